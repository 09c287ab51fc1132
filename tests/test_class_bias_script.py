"""scripts/class_bias.py: -tau * ln(w) from a run's class_weights.json, as an override the config takes."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from sceneseg.config import load_config

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "class_bias.py"
spec = importlib.util.spec_from_file_location("class_bias", SCRIPT)
script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)


def test_bias_is_minus_tau_log_weight():
    assert script.class_bias([1.0, math.e, math.exp(-2)], 0.5) == [0.0, -0.5, 1.0]
    assert script.class_bias([4.0, 0.25], 0.0) == [0.0, 0.0]


def test_printed_override_loads_into_the_eval_section(tmp_path, capsys):
    (tmp_path / "class_weights.json").write_text(json.dumps({"class_weights": "enet", "weights": {"a": 2.0, "b": 0.5}}))
    assert script.main([str(tmp_path), "--tau", "1", "0.5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["eval.class_bias=[-0.6931,0.6931]", "eval.class_bias=[-0.3466,0.3466]"]
    assert load_config(None, ["model.num_classes=2", lines[0]]).eval.class_bias == pytest.approx((-0.6931, 0.6931))


def test_a_run_without_class_weights_is_a_clear_error(tmp_path, capsys):
    assert script.main([str(tmp_path)]) == 2
    assert f"{tmp_path / 'class_weights.json'} does not exist" in capsys.readouterr().err


def test_left_classes_keep_a_zero_offset(tmp_path, capsys):
    weights = {"road": 0.5, "pole": 5.0, "sign": 4.0}
    (tmp_path / "class_weights.json").write_text(json.dumps({"class_weights": "enet", "weights": weights}))
    assert script.main([str(tmp_path), "--tau", "1", "--leave", "pole"]) == 0
    assert capsys.readouterr().out.strip() == "eval.class_bias=[0.6931,0.0,-1.3863]"
    assert script.main([str(tmp_path), "--leave", "Pole", "sky"]) == 2
    err = capsys.readouterr().err
    assert "--leave Pole sky: not a class of" in err and "(road, pole, sign)" in err


def test_a_class_of_weight_zero_keeps_a_zero_offset(tmp_path, capsys):
    # Absent from the train split, so weighted 0: there is no prior to take back, and ln 0 is no offset.
    weights = {"road": 0.5, "boat": 0.0, "sign": 4.0}
    (tmp_path / "class_weights.json").write_text(json.dumps({"class_weights": "enet", "weights": weights}))
    assert script.main([str(tmp_path), "--tau", "1"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "eval.class_bias=[0.6931,0.0,-1.3863]"
    assert "boat: weight 0 in" in captured.err
    assert script.main([str(tmp_path), "--tau", "1", "--leave", "boat"]) == 0
    assert capsys.readouterr().err == ""
