import math

import numpy as np
import pytest
import torch

from sceneseg.metrics import ConfusionMatrix, format_metrics


def brute_force(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore: int = 255):
    """Per-class IoU and accuracy by explicit pixel counting, NaN where undefined."""
    keep = target != ignore
    iou, acc = [], []
    for c in range(num_classes):
        p, t = (pred == c) & keep, (target == c) & keep
        inter, union = np.sum(p & t), np.sum(p | t)
        iou.append(inter / union if union else math.nan)
        acc.append(inter / t.sum() if t.sum() else math.nan)
    all_acc = np.sum((pred == target) & keep) / keep.sum()
    return np.array(iou), np.array(acc), all_acc


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_with_ignore_and_absent_classes(seed):
    rng = np.random.default_rng(seed)
    num_classes = 6
    # class 5 never appears in target nor prediction; class 4 is predicted but absent from the truth
    target = rng.integers(0, 4, size=(3, 17, 23))
    target[rng.random(target.shape) < 0.2] = 255
    pred = rng.integers(0, 5, size=target.shape)
    cm = ConfusionMatrix(num_classes)
    for i in range(3):  # accumulate over batches
        cm.update(torch.from_numpy(pred[i : i + 1]), torch.from_numpy(target[i : i + 1]))
    iou, acc, all_acc = brute_force(pred, target, num_classes)
    np.testing.assert_allclose(cm.iou().numpy(), iou, equal_nan=True)
    np.testing.assert_allclose(cm.accuracy().numpy(), acc, equal_nan=True)
    summary = cm.summary([f"c{i}" for i in range(num_classes)])
    assert summary["mIoU"] == pytest.approx(np.nanmean(iou))
    assert summary["mAcc"] == pytest.approx(np.nanmean(acc))
    assert summary["allAcc"] == pytest.approx(all_acc)
    assert summary["classes"][5] == {"name": "c5", "iou": None, "acc": None}
    assert summary["classes"][4]["iou"] == 0.0 and summary["classes"][4]["acc"] is None
    assert sum(map(sum, summary["confusion"])) == int((target != 255).sum())


def test_counts_of_many_updates_match_a_direct_count():
    # Updates pile up on the device between reads; the matrix must be that of one count of them all.
    rng = np.random.default_rng(0)
    cm, expected = ConfusionMatrix(5), np.zeros((5, 5), np.int64)
    for step in range(6):
        target = rng.choice([0, 1, 2, 3, 4, 255], size=(2, 7, 9))
        pred = rng.integers(0, 5, size=(2, 7, 9))
        cm.update(torch.from_numpy(pred), torch.from_numpy(target).to(torch.uint8))
        keep = target != 255
        np.add.at(expected, (target[keep], pred[keep]), 1)
        if step == 2:  # a read in between folds the pending counts in once
            assert np.array_equal(cm.matrix.numpy(), expected)
    assert cm.matrix.dtype == torch.int64 and np.array_equal(cm.matrix.numpy(), expected)
    cm.update(torch.zeros(0), torch.zeros(0))  # an empty batch counts nothing
    assert np.array_equal(cm.matrix.numpy(), expected)


def test_perfect_prediction_and_ignored_pixels_do_not_count():
    target = torch.tensor([[0, 1], [255, 2]])
    pred = torch.tensor([[0, 1], [1, 2]])  # the wrong pixel is ignored
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    assert cm.summary(["a", "b", "c"])["mIoU"] == 1.0


def test_bad_inputs():
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 1]), torch.tensor([0, 7]))  # found when the counts are read, not here
    with pytest.raises(ValueError, match=r"label values from 0 to 7 .* outside 0..2"):
        cm.summary(["a", "b", "c"])
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 1]), torch.tensor([-1, 255]))
    with pytest.raises(ValueError, match="from -1 to 0"):
        cm.mean_iou()
    with pytest.raises(ValueError, match="shape"):
        cm.update(torch.zeros(2, 2), torch.zeros(2, 3))


def test_format_metrics_lists_every_class():
    cm = ConfusionMatrix(2)
    cm.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
    text = format_metrics(cm.summary(["Road", "Not_Road"]))
    assert "Road" in text and "Not_Road" in text and "mIoU 0.5000   mAcc 0.7500   allAcc 0.6667" in text


def test_all_reduce_sums_over_the_processes_of_the_distributed_it_is_given():
    from sceneseg.distributed import Distributed

    class TwoEqualRanks(Distributed):
        def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
            return tensor * 2  # what summing over two ranks holding the same counts gives

    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 255]))
    counts = cm.matrix.clone()
    cm.all_reduce(Distributed())  # a single process: nothing to sum
    assert torch.equal(cm.matrix, counts)
    cm.all_reduce(TwoEqualRanks(rank=0, world_size=2))
    assert torch.equal(cm.matrix, counts * 2)
