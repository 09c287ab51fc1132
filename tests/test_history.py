"""History records and their TensorBoard scalars (sceneseg.history)."""

from __future__ import annotations

import json

import pytest

from sceneseg.history import SCALARS, History, tensorboard_writer


def _record(epoch: int, val_miou: float) -> dict:
    return {
        "epoch": epoch,
        "train_loss": 2.0 / epoch,
        "train_mIoU": 0.1 * epoch,
        "val_loss": 1.5 / epoch,
        "val_mIoU": val_miou,
        "val_mAcc": 0.5,
        "val_allAcc": 0.8,
        "lr": 0.01 / epoch,
        "seconds": 1.0,
    }


def test_best_epoch_and_files(tmp_path):
    history = History(tmp_path)
    assert [history.add(_record(e, m)) for e, m in ((1, 0.2), (2, 0.4), (3, 0.4), (4, 0.3))] == [
        True,
        True,
        False,
        False,
    ]
    assert history.best()["epoch"] == 2
    history.write()
    assert json.loads((tmp_path / "history.json").read_text())[3]["val_mIoU"] == 0.3
    assert (tmp_path / "history.csv").read_text().splitlines()[0].startswith("epoch,train_loss,train_mIoU")


def test_tensorboard_scalars_match_the_records(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    history = History(tmp_path, tensorboard_writer(tmp_path / "tb"))
    records = [_record(1, 0.2), _record(2, 0.35)]
    for record in records:
        history.add(record)
    history.writer.close()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert sorted(events.Tags()["scalars"]) == sorted(SCALARS.values())
    for key, tag in SCALARS.items():
        logged = events.Scalars(tag)
        assert [e.step for e in logged] == [1, 2]
        assert [e.value for e in logged] == pytest.approx([r[key] for r in records], rel=1e-6)
