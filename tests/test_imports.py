"""Imports go one way: using a trained model never loads the training code."""

from __future__ import annotations

import json
import subprocess
import sys

# Modules that only training and its evaluation need. (builders is not one: it builds datasets and
# tells their classes, which loading a model uses too.)
TRAINING_ONLY = (
    "sceneseg.training",
    "sceneseg.training_run",
    "sceneseg.optimizer",
    "sceneseg.evaluation",
    "sceneseg.engine",
    "sceneseg.losses",
    "sceneseg.class_weights",
    "sceneseg.sync_batchnorm",
    "sceneseg.stopping",
    "sceneseg.history",
    "sceneseg.transfer",
    "sceneseg.distributed",
    "sceneseg.cli_train",
)


def test_inference_modules_do_not_import_training_code():
    # A fresh interpreter: in this one, other tests have imported everything already.
    code = (
        "import json, sys\n"
        "import sceneseg.api, sceneseg.predict_files, sceneseg.export, sceneseg.inference, sceneseg.cli_infer\n"
        "print(json.dumps(sorted(name for name in sys.modules if name.startswith('sceneseg.'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "sceneseg.api" in loaded
    assert sorted(loaded.intersection(TRAINING_ONLY)) == []
