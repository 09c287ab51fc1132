import cv2
import numpy as np
import pytest

from sceneseg.data import FolderDataset
from sceneseg.errors import DataError

CLASSES = ("sky", "road", "car")
PALETTE = ((0, 0, 255), (128, 128, 128), (255, 0, 0))


def write(root, name, mask, colour: bool):
    (root / "images").mkdir(exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    cv2.imwrite(str(root / "images" / f"{name}.jpg"), np.zeros((*mask.shape[:2], 3), np.uint8))
    cv2.imwrite(str(root / "masks" / f"{name}.png"), mask[..., ::-1] if colour else mask)


def test_index_masks(tmp_path):
    mask = np.array([[0, 1, 2], [255, 1, 0]], np.uint8)
    write(tmp_path, "a", mask, colour=False)
    ds = FolderDataset(tmp_path, CLASSES)
    assert ds.num_classes == 3 and np.array_equal(ds.load_raw(0)[1], mask)
    write(tmp_path, "b", np.array([[0, 3, 1], [1, 1, 1]], np.uint8), colour=False)
    with pytest.raises(DataError, match=r"b.png contains values \[3\]"):
        FolderDataset(tmp_path, CLASSES, cache=True)


def test_colour_masks_with_palette_and_black_as_ignore(tmp_path):
    index = np.array([[0, 1, 2], [2, 1, 0]])
    colour = np.array(PALETTE, np.uint8)[index]
    colour[1, 2] = 0  # black: unlabelled
    write(tmp_path, "a", colour, colour=True)
    label = FolderDataset(tmp_path, CLASSES, palette=PALETTE).load_raw(0)[1]
    assert label.tolist() == [[0, 1, 2], [2, 1, 255]]
    colour[0, 0] = (7, 8, 9)
    write(tmp_path, "a", colour, colour=True)
    with pytest.raises(DataError, match=r"a.png has colours \(7, 8, 9\)"):
        FolderDataset(tmp_path, CLASSES, palette=PALETTE).load_raw(0)
    with pytest.raises(DataError, match="one RGB triple per class"):
        FolderDataset(tmp_path, CLASSES, palette=PALETTE[:2])
