"""Build the small CamVid sample that ships inside the package (src/sceneseg/data/sample/).

The sample lets the tests, the tutorial and a quick smoke-training run work without downloading
anything. It takes frames evenly spaced over the sorted file lists, so that every sequence in the
split (0001TP, 0006R0 and 0016E5 in train) is represented, and halves the resolution to stay small.

Usage:
    python scripts/make_sample.py /path/to/camvid        # SegNet layout: train/, trainannot/, ...
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import cv2
import numpy as np

# Where the sample goes, relative to this script (scripts/ sits beside src/).
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "src" / "sceneseg" / "data" / "sample"
COUNTS = {"train": 24, "val": 8}
SIZE_HW = (180, 240)
JPEG_QUALITY = 90

README = """\
# Built-in CamVid sample

{train} training and {val} validation frames from CamVid, the Cambridge-driving Labeled Video
Database, in the 11-class version published with SegNet. Frames were taken evenly spaced over
SegNet's sorted train and val lists (so all sequences appear), downsized from 360x480 to
{height}x{width} (images with area interpolation, stored as JPEG quality {quality}; labels with
nearest-neighbour, stored as PNG). Labels keep SegNet's indices 0-11 (11 = Unlabelled).
Made by `scripts/make_sample.py`.

It is here so that tests and a first run work out of the box; it is far too small to train a
useful model. CamVid is provided for research use; if you publish results, cite:

G. J. Brostow, J. Fauqueur, R. Cipolla. "Semantic object classes in video: A high-definition
ground truth database." Pattern Recognition Letters 30(2), 88-97, 2009.

The 11-class SegNet version: V. Badrinarayanan, A. Kendall, R. Cipolla. "SegNet: A Deep
Convolutional Encoder-Decoder Architecture for Image Segmentation." IEEE TPAMI 39(12), 2017.
"""


def pick_evenly(files: list[Path], count: int) -> list[Path]:
    """`count` files spread evenly from first to last (all of them if there are fewer)."""
    if len(files) <= count:
        return files
    indices = np.linspace(0, len(files) - 1, count).round().astype(int)
    return [files[i] for i in indices]


def copy_split(source: Path, split: str, count: int) -> None:
    height, width = SIZE_HW
    images = sorted((source / split).glob("*.png"))
    if not images:
        raise SystemExit(f"no PNG images in {source / split}; expected CamVid in SegNet layout")
    for folder in (split, f"{split}annot"):
        (SAMPLE_DIR / folder).mkdir(parents=True)
    for image_path in pick_evenly(images, count):
        label_path = source / f"{split}annot" / image_path.name
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        label = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
        if image is None or label is None or label.ndim != 2:
            raise SystemExit(f"cannot read {image_path} or its label {label_path}")
        # INTER_AREA averages whole source pixels (no aliasing); labels must never be mixed.
        small_image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        small_label = cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
        out_image = SAMPLE_DIR / split / f"{image_path.stem}.jpg"
        cv2.imwrite(str(out_image), small_image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        cv2.imwrite(str(SAMPLE_DIR / f"{split}annot" / image_path.name), small_label)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("camvid", type=Path, help="CamVid root in SegNet layout")
    args = parser.parse_args()
    # Rebuild from scratch so frames from an earlier selection never linger.
    if SAMPLE_DIR.exists():
        shutil.rmtree(SAMPLE_DIR)
    for split, count in COUNTS.items():
        copy_split(args.camvid, split, count)
    height, width = SIZE_HW
    (SAMPLE_DIR / "README.md").write_text(
        README.format(train=COUNTS["train"], val=COUNTS["val"], height=height, width=width, quality=JPEG_QUALITY)
    )
    total = sum(p.stat().st_size for p in SAMPLE_DIR.rglob("*") if p.is_file())
    print(f"wrote {SAMPLE_DIR} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
