"""Rare-class paste: another frame's thin and small objects copied into a training frame.

Class weights and rare-class crops show the model the same few pole and sign pixels more often;
pasting shows it those objects in front of other backgrounds. With probability `prob` a training
frame gets, at the same place, every pixel of a rare class (image and label) from a donor frame, a
train frame that holds one; the augmentation then runs as usual on the result. Pasting at the same
place keeps the object's size and position plausible for datasets filmed from one car camera, as
CamVid and KITTI are. A donor of another size is resized to the frame's first (data/resize.py).

The draw is a function of the sample's augmentation seed alone (SegmentationDataset.sample_seed),
from a generator of its own, so the pasted frame is the same for any number of workers or processes,
and every draw of the transform stays what it was without pasting; only where a rare-class crop
(ClassAwareCrop) lands can change, as it looks at the label, which now holds more rare pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sceneseg.data.resize import resize_pair
from sceneseg.errors import DataError

Frame = tuple[np.ndarray, np.ndarray]  # (image, label)

# Mixed into the sample's seed so the paste's draws never coincide with the transform's.
_PASTE_STREAM = 0x9A57E


@dataclass(frozen=True)
class RarePaste:
    """Paste `classes` from one of the `donors` (frame indices) with probability `prob`."""

    classes: tuple[int, ...]
    donors: tuple[int, ...]
    prob: float

    def __post_init__(self) -> None:
        if not 0 <= self.prob <= 1:
            raise DataError(f"paste probability {self.prob}: expected a probability in [0, 1]")

    def donor(self, index: int, seed: int) -> int | None:
        """The frame whose rare pixels frame `index` gets under augmentation seed `seed` (None: no paste)."""
        rng = np.random.default_rng(np.random.SeedSequence([seed % 2**64, _PASTE_STREAM]))
        if rng.random() >= self.prob or not self.classes:
            return None
        # Listed only for the frames that paste: this runs for every training sample.
        candidates = [d for d in self.donors if d != index]
        return candidates[int(rng.integers(len(candidates)))] if candidates else None

    def apply(self, index: int, seed: int, image: np.ndarray, label: np.ndarray, load: Callable[[int], Frame]) -> Frame:
        """Frame `index` (`image`, `label`) as seed `seed` pastes it, the donor read with `load`
        (training reads prepared frames, the class-weight count raw ones)."""
        donor = self.donor(index, seed)
        return (image, label) if donor is None else paste_classes(image, label, *load(donor), self.classes)


def paste_classes(
    image: np.ndarray, label: np.ndarray, donor_image: np.ndarray, donor_label: np.ndarray, classes: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """New arrays: (`image`, `label`) with the donor's pixels of `classes` copied over them, in place.
    The inputs are left untouched (they may be a dataset's read-only cache)."""
    donor_image, donor_label = resize_pair(donor_image, donor_label, *label.shape)
    where = np.isin(donor_label, classes)
    image, label = image.copy(), label.copy()
    image[where] = donor_image[where]
    label[where] = donor_label[where]
    return image, label
