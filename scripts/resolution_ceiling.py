"""The IoU a perfect model could reach when it predicts at a coarse grid: a per-class ceiling.

    python scripts/resolution_ceiling.py --root ../shared/datasets/camvid [--split val]
        [--short-sides 240 360] [--strides 1 4 8 16 32] [--classes SignSymbol Column_Pole ...]

For each frame the ground truth (one-hot, full resolution) is area-averaged onto the grid of a model
that sees the frame at `short side` and predicts at `stride` (a 240x320 frame at stride 8: 30x40),
then bilinearly upsampled back to the label's size and arg-maxed, as sceneseg's evaluation does with
a model's probabilities. The result is the best a model with that output grid can score: every class
probability exactly right at every grid point. A model may also favour a class (class weights do):
the second table calls a pixel class c wherever c's upsampled share reaches a threshold, the best of
THRESHOLDS for each class. A thin class whose ceilings are low cannot be found by any loss or
sampling at that resolution. Unlabelled pixels count for no class.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from sceneseg.data import CAMVID_CLASSES
from sceneseg.data.camvid import CamVid
from sceneseg.metrics import ConfusionMatrix

HARD = ("SignSymbol", "Column_Pole", "Pedestrian", "Bicyclist", "Fence")
THRESHOLDS = torch.tensor([0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5])


def one_hot_label(label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(1, num_classes, H, W) float one-hot map of an H x W label; unlabelled pixels are all zeros."""
    valid = label < num_classes
    one_hot = F.one_hot(torch.where(valid, label, 0).long(), num_classes).permute(2, 0, 1).float()
    return (one_hot * valid).unsqueeze(0)


def round_trip(one_hot: torch.Tensor, short_side: int, stride: int) -> torch.Tensor:
    """(num_classes, H, W): a one_hot_label map after a round trip through the output grid."""
    height, width = one_hot.shape[-2:]
    factor = short_side / min(height, width) / stride
    grid = (max(1, round(height * factor)), max(1, round(width * factor)))
    coarse = F.interpolate(one_hot, size=grid, mode="area")
    return F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[0]


def threshold_counts(shares: torch.Tensor, truth: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(len(THRESHOLDS), 2): intersection and union of `truth` and `shares >= t` on valid pixels."""
    called = shares[valid].unsqueeze(0) >= THRESHOLDS.unsqueeze(1)
    truth = truth[valid].unsqueeze(0)
    return torch.stack([(called & truth).sum(1), (called | truth).sum(1)], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="CamVid in the SegNet layout")
    parser.add_argument("--split", default="val")
    parser.add_argument("--short-sides", type=int, nargs="+", default=[240, 360])
    parser.add_argument("--strides", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--classes", nargs="+", default=list(HARD), choices=CAMVID_CLASSES, metavar="CLASS")
    args = parser.parse_args()
    dataset = CamVid(args.root, args.split)
    settings = [(s, k) for s in args.short_sides for k in args.strides]
    confusions = {setting: ConfusionMatrix(len(CAMVID_CLASSES)) for setting in settings}
    columns = [CAMVID_CLASSES.index(c) for c in args.classes]
    favoured = {setting: torch.zeros(len(columns), len(THRESHOLDS), 2, dtype=torch.int64) for setting in settings}
    for index in range(len(dataset)):
        label = torch.from_numpy(dataset.load_raw(index)[1])
        valid = label < len(CAMVID_CLASSES)
        one_hot = one_hot_label(label, len(CAMVID_CLASSES))  # once per frame, for every setting
        for short_side, stride in settings:
            shares = round_trip(one_hot, short_side, stride)
            confusions[short_side, stride].update(shares.argmax(0), label)
            for k, c in enumerate(columns):
                favoured[short_side, stride][k] += threshold_counts(shares[c], label == c, valid)
    print(f"IoU ceiling on {len(dataset)} {args.split} frames of {args.root}")
    print("\narg-max of the exact class shares:\n")
    _print_table(args.classes, {s: (c.mean_iou(), c.iou()[columns].tolist()) for s, c in confusions.items()})
    steps = ", ".join(f"{t:g}" for t in THRESHOLDS.tolist())
    print(f"\neach class called where its share reaches a threshold (in brackets: the best of {steps}):\n")
    rows = {}
    for setting, counts in favoured.items():
        best, at = (counts[..., 0] / counts[..., 1].clamp(min=1)).max(1)
        rows[setting] = (None, [f"{v:.3f} ({THRESHOLDS[i]:.2f})" for v, i in zip(best.tolist(), at.tolist())])
    _print_table(args.classes, rows)


def _print_table(classes: list[str], rows: dict) -> None:
    print("| short side | stride | mIoU | " + " | ".join(classes) + " |")
    print("|---:|---:|---:|" + "---:|" * len(classes))
    for (short_side, stride), (miou, ious) in rows.items():
        cells = " | ".join(v if isinstance(v, str) else f"{float(v):.3f}" for v in ious)
        print(f"| {short_side} | {stride} | {'-' if miou is None else f'{miou:.3f}'} | {cells} |")


if __name__ == "__main__":
    main()
