import os

import pytest
import torch

from sceneseg.checkpoint import config_differences, load_checkpoint, read_weights_file, save_checkpoint
from sceneseg.config import load_config
from sceneseg.errors import WeightsError


def test_round_trip_and_no_temporary_files_left(tmp_path):
    path = tmp_path / "run" / "last.pt"
    save_checkpoint(path, config={"name": "x"}, model={"w": torch.ones(2)}, epoch=3)
    content = load_checkpoint(path)
    assert content["epoch"] == 3 and torch.equal(content["model"]["w"], torch.ones(2))
    assert os.listdir(path.parent) == ["last.pt"]


def test_failed_save_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, config={}, model={}, epoch=1)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_checkpoint(path, config={}, model={}, epoch=2, extra=Unpicklable())
    assert load_checkpoint(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["last.pt"]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_refuses_files_that_need_unpickling_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "sceneseg-checkpoint", "model": _Evil(str(marker))}, path)
    with pytest.raises(WeightsError, match="refusing to load .*evil.pt"):
        load_checkpoint(path)
    assert not marker.exists()


def test_clear_errors_for_missing_truncated_and_foreign_files(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        read_weights_file(tmp_path / "nope.pt")
    path = tmp_path / "a.pt"
    save_checkpoint(path, config={}, model={"w": torch.zeros(1000)}, epoch=1)
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(path.read_bytes()[:500])
    with pytest.raises(WeightsError, match="trunc.pt"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"conv1.weight": torch.zeros(1)}, foreign)
    with pytest.raises(WeightsError, match="not a sceneseg checkpoint"):
        load_checkpoint(foreign)


def test_resume_needs_epochs_for_the_part_way_epoch_too(tmp_path):
    # A run stopped part-way through epoch 3: train.epochs=2 would drop that part, and last.pt, still
    # marking it, would keep the run partial for ever; 3 continues it.
    from sceneseg.checkpoint import checkpoint_to_resume
    from sceneseg.config import load_config, to_dict
    from sceneseg.errors import ConfigError

    config = load_config(None, [f"train.out_dir={tmp_path}", "train.epochs=5"])
    content = dict(config=to_dict(config), model={}, epoch=2, interrupted={"epoch": 3, "iteration": 1})
    save_checkpoint(tmp_path / "last.pt", **content)
    short = load_config(None, [f"train.out_dir={tmp_path}", "train.epochs=2"])
    with pytest.raises(ConfigError, match=r"already trained 2 epochs, and part of epoch 3; expected at least 3$"):
        checkpoint_to_resume(short, tmp_path)
    enough = load_config(None, [f"train.out_dir={tmp_path}", "train.epochs=3"])
    assert checkpoint_to_resume(enough, tmp_path)["interrupted"]["epoch"] == 3
    save_checkpoint(tmp_path / "last.pt", **{k: v for k, v in content.items() if k != "interrupted"})
    assert checkpoint_to_resume(short, tmp_path)["epoch"] == 2  # no part-way epoch: 2 epochs are all it has


def test_a_mapping_field_differs_as_one_value_whichever_side_holds_more_names():
    # data.options and loss.class_weight_mult are mappings: a name only one side has is a difference
    # (a resume or a study must not take a run trained with another pole weight for this one).
    plain = load_config(None, ["loss.class_weights=enet"])
    doubled = load_config(None, ["loss.class_weights=enet", "loss.class_weight_mult={Column_Pole: 2}"])
    expected = "loss.class_weight_mult (run: {}, now: {'Column_Pole': 2.0})"
    assert config_differences(plain, doubled) == [expected]
    assert config_differences(doubled, plain) == ["loss.class_weight_mult (run: {'Column_Pole': 2.0}, now: {})"]
    assert config_differences(doubled, doubled) == []
    assert config_differences(plain, load_config(None, ["loss.class_weights=enet", "train.epochs=99"])) == []


def test_onnx_yaml_and_empty_files_are_named_not_pytorch_checkpoints(tmp_path):
    onnx = tmp_path / "best.onnx"
    onnx.write_bytes(b"\x08\x08\x12\x07pytorch")  # an ONNX model is a protobuf message
    expected = r"not a PyTorch checkpoint \(expected a file written by torch.save, such as a run's best.pt\)"
    with pytest.raises(WeightsError, match=rf"best.onnx: {expected}; an ONNX model is read only by 'sceneseg predict'"):
        load_checkpoint(onnx)
    config = tmp_path / "config.yaml"
    config.write_text("name: x\n")
    with pytest.raises(WeightsError, match=rf"config.yaml: {expected}$"):
        load_checkpoint(config)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(WeightsError, match=r"checkpoint .*empty.pt is empty; expected a file written by torch.save"):
        load_checkpoint(empty)
