"""Class weights (class_weights.py) against hand computations: the ENet and median-frequency formulas,
a given list, class_weight_mult's factors, and a run that logs, stores and checks them on a resume."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sceneseg.checkpoint import load_checkpoint
from sceneseg.class_weights import class_weights, train_class_weights
from sceneseg.cli import main
from sceneseg.config import LossConfig
from sceneseg.data import LabelCounts, count_labels
from sceneseg.errors import ConfigError, DataError
from sceneseg.labels import IGNORE_INDEX
from tests.test_cli import TINY

X = IGNORE_INDEX


class _Labels:
    """Just what count_labels (and train_class_weights) read of a dataset: raw labels (the image only gives
    the size) and class names."""

    num_classes, ignore_index = 4, IGNORE_INDEX
    class_names = ("road", "pole", "sign", "sky")

    def __init__(self, *labels):
        self.labels = [np.array(label, dtype=np.uint8) for label in labels]

    def __len__(self):
        return len(self.labels)

    def load_raw(self, index):
        label = self.labels[index]
        return np.zeros((*label.shape, 3), np.uint8), label


# Class 0: 2 + 5 pixels in frames of 4 and 6 pixels; class 1: 1 + 3 in frames of 4 and 4; class 2:
# 1 in a frame of 4; class 3: absent. 12 labelled pixels, 2 ignored.
FRAMES = _Labels([[0, 0], [1, X]], [[1, 1, 1, 2]], [[0, 0, 0], [0, 0, X]])


def test_one_counter_counts_class_pixels_and_the_pixels_of_the_frames_holding_each_class():
    counts = count_labels(FRAMES)
    assert counts.class_pixels.tolist() == [7, 4, 1, 0]
    assert counts.image_pixels.tolist() == [10, 8, 4, 0]
    assert counts.ignored_pixels == 2 and counts.sizes == {"1x4": 1, "2x2": 1, "2x3": 1}


def test_median_frequency_weights_by_hand():
    # freq = 7/10, 4/8, 1/4; median 1/2; raw = 5/7, 1, 2; p = 7/12, 4/12, 1/12, so sum_c p_c raw_c
    # = 5/12 + 4/12 + 2/12 = 11/12 and w = raw * 12/11. The absent class gets 0.
    weights = class_weights("median_frequency", count_labels(FRAMES))
    assert weights == pytest.approx([60 / 77, 12 / 11, 24 / 11, 0.0], rel=1e-12)


@pytest.mark.parametrize("c", [1.02, 1.5])
def test_enet_weights_by_hand_and_normalised_to_a_mean_of_one_per_labelled_pixel(c):
    share = np.array([7, 4, 1, 0]) / 12
    raw = [1 / math.log(c + p) for p in share[:3]]
    scale = sum(p * r for p, r in zip(share, raw))
    weights = class_weights("enet", count_labels(FRAMES), enet_c=c)
    assert weights == pytest.approx([r / scale for r in raw] + [0.0], rel=1e-12)
    assert share @ weights == pytest.approx(1.0)


def test_a_list_of_weights_is_used_as_given_and_a_split_without_labels_is_an_error():
    assert class_weights((2.0, 0.5, 1.0, 3.0), None).tolist() == [2.0, 0.5, 1.0, 3.0]
    assert class_weights(None, None) is None
    empty = LabelCounts(np.zeros(4, np.int64), np.zeros(4, np.int64), 10, {"2x5": 1})
    with pytest.raises(DataError, match="no labelled pixel"):
        class_weights("enet", empty)


def test_class_weight_mult_scales_the_named_classes_after_the_formula_and_its_scaling():
    counts = count_labels(FRAMES)
    enet = class_weights("enet", counts)
    config = LossConfig(class_weights="enet", class_weight_mult={"pole": 2.0, "sign": 0.5})
    weights = train_class_weights(config, FRAMES, counts).tolist()
    # Not rescaled afterwards: only the two named weights move, by exactly their factors.
    assert weights == pytest.approx([enet[0], 2 * enet[1], 0.5 * enet[2], 0.0], rel=1e-6)
    listed = LossConfig(class_weights=(1.0, 1.0, 3.0, 1.0), class_weight_mult={"sign": 2.0})
    assert train_class_weights(listed, FRAMES, counts).tolist() == [1.0, 1.0, 6.0, 1.0]
    with pytest.raises(
        ConfigError, match=r"'Pole' is not a class of this dataset \(road, pole, sign, sky\); did you mean pole\?"
    ):
        train_class_weights(LossConfig(class_weights="enet", class_weight_mult={"Pole": 2.0}), FRAMES, counts)


def test_a_run_with_enet_weights_logs_and_stores_them_and_a_resume_checks_them(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", *TINY, "train.epochs=1", "loss.class_weights=enet", f"train.out_dir={run}", "--no-progress"]
    assert main(args) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("class weights: "))
    stored = json.loads((run / "class_weights.json").read_text())
    assert stored["class_weights"] == "enet" and list(stored["weights"])[:2] == ["Building", "Tree"]
    assert line.split()[2] == f"Building={stored['weights']['Building']:.4g}"
    assert load_checkpoint(run / "last.pt")["config"]["loss"]["class_weights"] == "enet"
    original = (run / "class_weights.json").read_text()
    stored["weights"]["Building"] *= 2  # as if the train labels had changed since
    (run / "class_weights.json").write_text(json.dumps(stored))
    resume = [*args[:-2], "train.epochs=2", f"train.out_dir={run}", "--resume", "--no-progress"]
    assert main(resume) == 2
    assert "class_weights.json: the run started with other class weights" in capsys.readouterr().err
    (run / "class_weights.json").write_text(original)
    assert main(resume) == 0  # recounted, the same weights
    assert (run / "class_weights.json").read_text() == original


def test_a_run_with_a_class_weight_mult_stores_it_and_trains_with_the_scaled_weight(tmp_path):
    run = tmp_path / "run"
    mult = "loss.class_weight_mult={Column_Pole: 3}"
    args = ["train", *TINY, "train.epochs=1", "loss.class_weights=[1,1,1,1,1,1,1,1,1,1,1]", mult]
    assert main([*args, f"train.out_dir={run}", "--no-progress"]) == 0
    stored = json.loads((run / "class_weights.json").read_text())
    assert stored["class_weight_mult"] == {"Column_Pole": 3.0}
    assert [name for name, w in stored["weights"].items() if w != 1.0] == ["Column_Pole"]
    assert stored["weights"]["Column_Pole"] == 3.0


def test_an_unknown_class_in_class_weight_mult_stops_training_before_any_run_folder(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", *TINY, "loss.class_weights=enet", "loss.class_weight_mult={Column_pole: 2}"]
    assert main([*args, f"train.out_dir={run}", "--no-progress"]) == 2
    assert "'Column_pole' is not a class of this dataset (Building, Tree," in capsys.readouterr().err
    assert not run.exists()  # nothing half-written: the run folder is never made
