"""End to end through the command line on the built-in sample, shrunk to tiny crops."""

import json

import pytest
import torch

from sceneseg.checkpoint import load_checkpoint
from sceneseg.cli import main, parse_arguments
from sceneseg.config import load_config
from sceneseg.history import without_timing
from sceneseg.training import fit

TINY = ["data.short_side=64", "data.crop_size=64", "eval.short_side=64", "train.batch_size=8", "train.bf16=false"]


def test_train_then_evaluate(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "train.epochs=2", f"train.out_dir={run}", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "mIoU" in out and str(run) in out
    # It ends by saying what to run next: predict with this run's weights, train on the full CamVid.
    assert f"  sceneseg predict {run / 'best.pt'} " in out and "  sceneseg train camvid_simple_r18_15min_cpu" in out
    for name in ("last.pt", "best.pt", "history.json", "history.csv", "metrics.json"):
        assert (run / name).is_file(), name
    history = json.loads((run / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2]
    metrics = json.loads((run / "metrics.json").read_text())
    assert [c["name"] for c in metrics["classes"]][:3] == ["Building", "Tree", "Sky"]
    assert 0.0 <= metrics["mIoU"] <= 1.0 and metrics["mode"] == "whole" and metrics["frames"] == 8
    ious = [c["iou"] for c in metrics["classes"] if c["iou"] is not None]
    assert metrics["mIoU"] == pytest.approx(sum(ious) / len(ious))
    checkpoint = load_checkpoint(run / "best.pt")
    assert checkpoint["config"]["train"]["epochs"] == 2
    # best.pt is what evaluate, predict and export read: no optimizer state, which only last.pt needs.
    assert {"model", "epoch", "config", "class_names", "history"} <= set(checkpoint)
    assert not {"optimizer", "scheduler"} & set(checkpoint)
    assert {"optimizer", "scheduler"} <= set(load_checkpoint(run / "last.pt"))

    out_json = tmp_path / "eval.json"
    assert main(["evaluate", str(run / "best.pt"), "--out", str(out_json), "--no-progress"]) == 0
    evaluated = json.loads(out_json.read_text())
    # Same weights, same data, same protocol: evaluate reproduces the end-of-training metrics.
    assert evaluated["mIoU"] == pytest.approx(metrics["mIoU"])
    assert evaluated["confusion"] == metrics["confusion"]

    # A second training into the same folder is refused, not silently overwritten.
    assert main(["train", *TINY, f"train.out_dir={run}", "--no-progress"]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "train.epoch=1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "override train.epoch=1: unknown key(s) train.epoch" in err
    assert main(["evaluate", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt does not exist" in capsys.readouterr().err


class _Crash(Exception):
    pass


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path, optimizer):
    # bit-exact on the CPU only; AdamW's moments and step count must travel in last.pt too
    config = load_config(None, [*TINY, "train.epochs=3", "device=cpu", f"train.optimizer={optimizer}"])
    straight = fit(config, tmp_path / "a", show_progress=False, log=lambda msg: None)

    def crash_after_first_epoch(message: str) -> None:
        if message.startswith("epoch   1"):
            raise _Crash

    with pytest.raises(_Crash):
        fit(config, tmp_path / "b", show_progress=False, log=crash_after_first_epoch)
    resume = load_checkpoint(tmp_path / "b" / "last.pt")
    assert resume["epoch"] == 1
    resumed = fit(config, tmp_path / "b", resume=resume, show_progress=False, log=lambda msg: None)

    def without_time(records):
        return [without_timing(r) for r in records]

    assert without_time(resumed.records) == without_time(straight.records)
    a = load_checkpoint(tmp_path / "a" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    state = load_checkpoint(tmp_path / "b" / "last.pt")["optimizer"]["state"]
    assert all(("exp_avg_sq" in s) == (optimizer == "adamw") for s in state.values())


def _tiny_segnet(root, frames=4, size=(48, 64)):
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        for i in range(frames):
            cv2.imwrite(str(root / split / f"f{i}.png"), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
            cv2.imwrite(str(root / f"{split}annot" / f"f{i}.png"), rng.integers(0, 12, size, dtype=np.uint8))


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _corrupt(path):
    path.write_bytes(b"this is not an image" * 10)


def _bad_value(path):
    import cv2
    import numpy as np

    cv2.imwrite(str(path), np.full((48, 64), 200, np.uint8))


def _other_size(path):
    import cv2
    import numpy as np

    cv2.imwrite(str(path), np.zeros((40, 64), np.uint8))


@pytest.mark.parametrize(
    "damage, target",
    [
        (_corrupt, "train/f1.png"),
        (_truncate, "val/f2.png"),
        (_bad_value, "trainannot/f0.png"),
        (_other_size, "valannot/f3.png"),
        (lambda p: p.unlink(), "trainannot/f2.png"),
    ],
    ids=["corrupt image", "truncated png", "label value", "size mismatch", "missing label"],
)
def test_bad_data_stops_before_any_checkpoint(tmp_path, capsys, damage, target):
    data, run = tmp_path / "data", tmp_path / "run"
    _tiny_segnet(data)
    damage(data / target)
    code = main(["train", *TINY, f"data.root={data}", f"train.out_dir={run}", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("sceneseg: error: ") and err.count("\n") == 1
    assert target.split("/")[-1] in err and target.split("/")[0] in err
    assert not (run / "last.pt").exists()
    assert main(["data", "check", str(data), "--split", target.split("/")[0].removesuffix("annot")]) == 2
    assert target.split("/")[-1] in capsys.readouterr().err


def test_data_check_prints_class_shares(capsys):
    assert main(["data", "check", "builtin:camvid-sample", "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "Road" in out and "Bicyclist" in out


def test_transfer_from_camvid_to_kitti_through_the_cli(tmp_path, capsys):
    from tests.data.test_kitti_road import write_kitti

    kitti = tmp_path / "kitti"
    write_kitti(kitti, counts=(11, 11, 11), size=(40, 60))
    psp = ["model.name=pspnet", "model.use_ppm=true", "model.aux_loss=true", "model.output_stride=8"]
    camvid_run, kitti_run = tmp_path / "camvid", tmp_path / "kitti_run"
    assert main(["train", *TINY, *psp, "train.epochs=1", f"train.out_dir={camvid_run}", "--no-progress"]) == 0
    args = [
        "train",
        "kitti_pspnet18_transfer_cpu",
        f"data.root={kitti}",
        "data.options.resize=[48, 64]",
        "data.short_side=48",
        "data.crop_size=48",
        "eval.short_side=48",
        "train.epochs=1",
        "train.batch_size=3",
        f"train.init_from={camvid_run / 'best.pt'}",
        "train.freeze_backbone=true",
        f"train.out_dir={kitti_run}",
        "--no-progress",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "replaced 4 (cls.4.weight, cls.4.bias, aux.4.weight, aux.4.bias)" in out
    metrics = json.loads((kitti_run / "metrics.json").read_text())
    assert [c["name"] for c in metrics["classes"]] == ["Road", "Not_Road"]
    split = json.loads((kitti_run / "data_split.json").read_text())
    assert (len(split["train"]), len(split["val"])) == (3, 30)
    before = load_checkpoint(camvid_run / "best.pt")["model"]
    after = load_checkpoint(kitti_run / "last.pt")["model"]
    assert torch.equal(before["backbone.layer3.0.bn1.running_mean"], after["backbone.layer3.0.bn1.running_mean"])
    assert main(["data", "check", str(kitti), "--split", "val", "--policy", "cs6476"]) == 0
    assert "Not_Road" in capsys.readouterr().out


def test_data_check_covers_every_split_and_fails_on_an_empty_one(tmp_path, capsys):
    data = tmp_path / "data"
    _tiny_segnet(data)
    assert main(["data", "check", str(data)]) == 0
    assert capsys.readouterr().out.count(": OK") == 2  # train and val (no test folder)
    for path in [*(data / "val").iterdir(), *(data / "valannot").iterdir()]:
        path.unlink()
    assert main(["data", "check", str(data)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{data / 'val'} holds no image/label pairs" in err


def test_data_check_takes_a_builtin_config_name(capsys):
    assert main(["data", "check", "sample"]) == 0
    out = capsys.readouterr().out
    assert "split='train', pairs=24): OK" in out and "split='val', pairs=8): OK" in out
    assert main(["data", "check", "no_such_root_or_config"]) == 2
    assert "dataset root no_such_root_or_config does not exist, and config" in capsys.readouterr().err


def test_data_check_refuses_options_its_target_does_not_take(tmp_path, capsys):
    _tiny_segnet(tmp_path / "data")
    # Silently dropped before: overrides on a root, and root options on a config.
    assert main(["data", "check", str(tmp_path / "data"), "data.cache=false"]) == 2
    assert "overrides (data.cache=false) apply to a config, not to a data root" in capsys.readouterr().err
    assert main(["data", "check", "sample", "--policy", "cs6476"]) == 2
    assert "--list and --policy apply to a data root, not to a config" in capsys.readouterr().err


def test_config_command_prints_a_config_that_loads_back(tmp_path, capsys):
    overrides = ["train.epochs=3", "data.options.policy=kitti"]
    assert main(["config", "kitti_pspnet18_transfer_cpu", *overrides]) == 0
    printed = tmp_path / "printed.yaml"
    printed.write_text(capsys.readouterr().out)
    assert load_config(printed) == load_config("kitti_pspnet18_transfer_cpu", overrides)
    assert main(["config", "train.epoch=3"]) == 2
    assert (
        "override train.epoch=3: unknown key(s) train.epoch in train; did you mean train.epochs?"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.name=pspnt", "expected one of deeplabv3plus, pspnet, simple; did you mean pspnet?"),
        ("model.decoder_stride=2", "model.decoder_stride does not apply to model 'simple'; set it to null"),
    ],
)
def test_config_command_checks_the_model_as_training_would(override, message, capsys):
    assert main(["config", "sample", override]) == 2
    out, err = capsys.readouterr()
    assert message in err and out == ""


def test_a_run_folder_keeps_its_resolved_config(tmp_path):
    run = tmp_path / "run"
    assert main(["train", *TINY, "train.epochs=1", f"train.out_dir={run}", "--no-progress"]) == 0
    assert load_config(run / "config.yaml") == load_config(None, [*TINY, "train.epochs=1", f"train.out_dir={run}"])


def test_train_and_val_sharing_frames_stop_before_training(tmp_path, capsys):
    assert main(["train", *TINY, "data.val_split=train", f"train.out_dir={tmp_path / 'run'}", "--no-progress"]) == 2
    assert "the train and val splits share 24 frame(s)" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_overrides_may_follow_options(capsys):
    given = ["train", "sample", "train.epochs=2", "--no-progress", "data.num_workers=0", "train.epochs=3"]
    args = parse_arguments(given)
    assert args.no_progress and args.config == "sample"
    assert args.overrides == ["train.epochs=2", "data.num_workers=0", "train.epochs=3"]  # the last one wins
    assert parse_arguments(["train", "--resume", "train.epochs=4"]).overrides == ["train.epochs=4"]
    for bad in (["train", "sample", "--no-progress", "--fast"], ["train", "sample", "--resume", "epochs"]):
        with pytest.raises(SystemExit):
            parse_arguments(bad)
        assert f"unrecognized arguments: {bad[-1]}" in capsys.readouterr().err
    assert main(["export", "run/best.pt", "train.epochs=2"]) == 2  # export takes no overrides
    assert "unrecognized arguments: train.epochs=2" in capsys.readouterr().err
    # `--only` takes the words after it; the overrides among them are overrides, not row names.
    args = parse_arguments(["study", "s.yaml", "a=1", "--only", "enet", "train.epochs=3", "lovasz", "b=2"])
    assert args.only == ["enet", "lovasz"] and args.overrides == ["a=1", "train.epochs=3", "b=2"]
    with pytest.raises(SystemExit):
        parse_arguments(["study", "s.yaml", "--only", "train.epochs=3"])
    assert "--only: expected at least one row name" in capsys.readouterr().err
