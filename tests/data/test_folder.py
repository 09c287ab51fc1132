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


def write_frames(root, count: int, size=(32, 32)) -> None:
    for i in range(count):
        write(root, f"f{i:02d}", np.full(size, i % 3, np.uint8), colour=False)


def test_ratio_split_is_seeded_disjoint_and_complete(tmp_path):
    write_frames(tmp_path, 10)
    options = dict(split_mode="ratio", val_ratio=0.3, split_seed=5)
    train, val = (FolderDataset(tmp_path, CLASSES, split=split, **options) for split in ("train", "val"))
    stems = {split: [image.stem for image, _ in ds.pairs] for split, ds in (("train", train), ("val", val))}
    assert len(stems["val"]) == 3 and not set(stems["train"]) & set(stems["val"])
    assert sorted(stems["train"] + stems["val"]) == [f"f{i:02d}" for i in range(10)]
    again = FolderDataset(tmp_path, CLASSES, split="val", **options)
    assert [image.stem for image, _ in again.pairs] == stems["val"]  # the same seed draws the same frames
    other = FolderDataset(tmp_path, CLASSES, split="val", **{**options, "split_seed": 6})
    assert [image.stem for image, _ in other.pairs] != stems["val"]


def test_splits_need_a_list_file_or_a_ratio(tmp_path):
    write_frames(tmp_path, 4)
    (tmp_path / "val.txt").write_text("# frames to validate on\nimages/f01.jpg masks/f01.png\n")
    val = FolderDataset(tmp_path, CLASSES, split="val", list_file=tmp_path / "val.txt")
    assert [image.name for image, _ in val.pairs] == ["f01.jpg"]
    # The list file names the frames, so the split may have any name (data.val_split: test).
    test = FolderDataset(tmp_path, CLASSES, split="test", list_file=tmp_path / "val.txt")
    assert [image.name for image, _ in test.pairs] == ["f01.jpg"]
    with pytest.raises(DataError, match="split 'test' with split_mode 'ratio'"):
        FolderDataset(tmp_path, CLASSES, split="test", split_mode="ratio")
    with pytest.raises(DataError, match="the val split of .* has no list file"):
        FolderDataset(tmp_path, CLASSES, split="val")
    with pytest.raises(DataError, match="split_mode 'ratio'; expected one of the two"):
        FolderDataset(tmp_path, CLASSES, split="val", list_file=tmp_path / "val.txt", split_mode="ratio")
    with pytest.raises(DataError, match="val_ratio = 0.0: expected a fraction between 0 and 1"):
        FolderDataset(tmp_path, CLASSES, split="val", split_mode="ratio", val_ratio=0.0)
