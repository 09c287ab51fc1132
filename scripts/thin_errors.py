"""Where a model's errors on thin classes lie: a pixel off an outline, or whole objects missed and invented.

    python scripts/thin_errors.py RUN_DIR/best.pt --split val [--classes Column_Pole SignSymbol] [key=value ...]

The checkpoint predicts the split's frames with its own evaluation settings, as `sceneseg evaluate`
scores them, against the full-resolution labels; `key=value` overrides change the checkpoint's
config (data.root=..., eval.class_bias=[]). For each class it prints the IoU; the share of
false positives (pixels called the class that are not) farther than d pixels from any true pixel of
the class in their frame, and of misses farther than d from any pixel predicted as it; the IoU if
every error within 1.5 px counted as right (what a perfect outline would add); and how many ground
truth objects (8-connected components of at least MIN_AREA pixels) have more than a fifth of their
pixels found. Near errors mean the readout is too coarse; far ones that the model does not recognise
the objects.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import cv2
import numpy as np

from sceneseg.labels import IGNORE_INDEX

DISTANCES = (1.5, 2.5, 4.5)
NEAR = 1.5
MIN_AREA = 10
FOUND_SHARE = 0.2
FAR = 1e6  # the distance of an error in a frame with no pixel to be near


def _distance_to(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance of every pixel to the nearest pixel of `mask` (FAR where the mask is empty)."""
    if not mask.any():
        return np.full(mask.shape, FAR, dtype=np.float32)
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


@dataclasses.dataclass
class ClassErrors:
    """One class's hits, and its false positives' and misses' distances, summed over frames."""

    hits: int = 0
    false_positive: list = dataclasses.field(default_factory=list)
    missed: list = dataclasses.field(default_factory=list)
    objects: int = 0
    found: int = 0

    def add(self, pred: np.ndarray, target: np.ndarray, cls: int, ignore: int = IGNORE_INDEX) -> None:
        truth, called = target == cls, (pred == cls) & (target != ignore)
        self.hits += int((truth & called).sum())
        self.false_positive.append(_distance_to(truth)[called & ~truth])
        self.missed.append(_distance_to(called)[truth & ~called])
        count, labels = cv2.connectedComponents(truth.astype(np.uint8), connectivity=8)
        for k in range(1, count):
            obj = labels == k
            if obj.sum() >= MIN_AREA:
                self.objects += 1
                self.found += int(called[obj].mean() > FOUND_SHARE)

    def summary(self) -> dict:
        fp, fn = np.concatenate(self.false_positive or [[]]), np.concatenate(self.missed or [[]])
        union = self.hits + len(fp) + len(fn)
        # A near miss forgiven is a hit; a near false positive forgiven leaves the union (its pixel is
        # not the class's, so it cannot be a hit).
        near_fp, near_fn = int((fp <= NEAR).sum()), int((fn <= NEAR).sum())
        return {
            "iou": self.hits / union if union else float("nan"),
            "far_false_positive": {d: float((fp > d).mean()) if len(fp) else 0.0 for d in DISTANCES},
            "far_missed": {d: float((fn > d).mean()) if len(fn) else 0.0 for d in DISTANCES},
            "iou_forgiving_near": (self.hits + near_fn) / (union - near_fp) if union > near_fp else float("nan"),
            "objects": self.objects,
            "found": self.found,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--split", default="val")
    parser.add_argument("--classes", nargs="+", default=["Column_Pole", "SignSymbol"])
    parser.add_argument("overrides", nargs="*", help="key=value changes to the checkpoint's config")
    args = parser.parse_args(argv)
    classes = list(dict.fromkeys(args.classes))  # a class named twice is counted once
    import torch

    from sceneseg.api import load_model, predict
    from sceneseg.builders import build_dataset
    from sceneseg.checkpoint import load_checkpoint
    from sceneseg.config import config_from_dict
    from sceneseg.errors import SceneSegError
    from sceneseg.evaluation import resolve_precision
    from sceneseg.inference import InferenceSettings

    try:
        config = config_from_dict(load_checkpoint(args.checkpoint)["config"], args.overrides)
        dataset = build_dataset(config.data, "val", "whole", split=args.split)
        missing = [c for c in classes if c not in dataset.class_names]
        if missing:
            raise SceneSegError(f"--classes {missing[0]!r}: not a class of {args.checkpoint}")
        model, settings = load_model(args.checkpoint), InferenceSettings.from_eval(config.eval)
        bf16 = resolve_precision(config, torch.device("cpu")).bf16  # train.bf16, as `sceneseg evaluate` takes it
        errors = {list(dataset.class_names).index(c): ClassErrors() for c in classes}
        for index in range(len(dataset)):
            image, target = dataset.load_raw(index)
            pred = predict(model, image, settings, bf16=bf16)
            for cls, counts in errors.items():
                counts.add(pred, target, cls)
    except SceneSegError as error:
        print(f"thin_errors: {error}", file=sys.stderr)
        return 2
    far = " | ".join(f"far FP > {d} px | far missed > {d} px" for d in DISTANCES)
    print(f"| class | IoU | {far} | IoU forgiving errors <= {NEAR} px | objects found |")
    print("|---" * (4 + 2 * len(DISTANCES)) + "|")
    for name, counts in zip(classes, errors.values()):
        s = counts.summary()
        cells = " | ".join(f"{s['far_false_positive'][d]:.2f} | {s['far_missed'][d]:.2f}" for d in DISTANCES)
        print(f"| {name} | {s['iou']:.3f} | {cells} | {s['iou_forgiving_near']:.3f} | {s['found']} / {s['objects']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
