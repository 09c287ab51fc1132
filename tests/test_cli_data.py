"""`sceneseg data split`: a development split that holds out whole sequences."""

from __future__ import annotations

import json
import shlex

from sceneseg.cli import main


def test_data_split_writes_lists_that_train_and_validate(tmp_path, capsys):
    out = tmp_path / "dev"
    assert main(["data", "split", "sample", "--hold-out", "0006R0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{out / 'train.txt'}: 17 frames from 0001TP, 0016E5" in printed
    assert f"{out / 'heldout.txt'}: 7 frames from 0006R0" in printed
    overrides = shlex.split(printed.splitlines()[-1])
    assert "data.options.label_order=segnet" in overrides and "data.val_split=heldout" in overrides
    # The printed overrides train on the 17 frames and validate on the 7 held out.
    assert main(["train", *overrides, "train.epochs=1", f"train.out_dir={tmp_path / 'run'}", "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["split"] == "heldout" and metrics["frames"] == 7
    assert sum(map(sum, metrics["confusion"])) > 0
    # A second split into the same folder would overwrite the lists: refused, files untouched.
    before = (out / "train.txt").read_text()
    assert main(["data", "split", "sample", "--hold-out", "0001TP", "--out", str(out)]) == 2
    assert "already exist" in capsys.readouterr().err and (out / "train.txt").read_text() == before


def test_data_commands_require_only_their_target_not_the_optional_overrides(capsys):
    assert main(["data", "check"]) == 2
    assert "the following arguments are required: target (see" in capsys.readouterr().err
    assert main(["data", "split"]) == 2
    assert "the following arguments are required: config, --hold-out, --out (see" in capsys.readouterr().err
