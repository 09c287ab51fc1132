"""CamVid loading: label remapping, both layouts, validation errors, seeding, the built-in sample."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sceneseg.data import CAMVID_CLASSES, CAMVID_PALETTE, SAMPLE_ROOT, SEGNET_TO_CANONICAL, CamVid, train_transform
from sceneseg.errors import DataError
from tests.paths import CAMVID_ROOT

# From the dataset README: SegNet index -> canonical index (Unlabelled -> 255 ignore).
SEGNET_EXPECTED = {0: 2, 1: 0, 2: 8, 3: 5, 4: 9, 5: 1, 6: 4, 7: 7, 8: 3, 9: 6, 10: 10, 11: 255}


def write_pair(root: Path, split: str, stem: str, label: np.ndarray, ext: str = ".png") -> Path:
    """Write a random image and `label` in SegNet layout; returns the image path."""
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(len(stem)).integers(0, 256, (*label.shape, 3), dtype=np.uint8)
    image_path = root / split / f"{stem}{ext}"
    cv2.imwrite(str(image_path), image)
    cv2.imwrite(str(root / f"{split}annot" / f"{stem}.png"), label.astype(np.uint8))
    return image_path


def every_segnet_index() -> np.ndarray:
    return np.tile(np.arange(12, dtype=np.uint8), (4, 1))  # 4x12, one column per index


def test_lut_maps_every_segnet_index():
    for segnet, canonical in SEGNET_EXPECTED.items():
        assert SEGNET_TO_CANONICAL[segnet] == canonical
    rest = SEGNET_TO_CANONICAL[12:]
    assert SEGNET_TO_CANONICAL.shape == (256,) and SEGNET_TO_CANONICAL.dtype == np.uint8
    assert not np.isin(rest, list(range(11)) + [255]).any()


def test_constants_follow_readme():
    assert CAMVID_CLASSES == (
        "Building", "Tree", "Sky", "Car", "SignSymbol", "Road",
        "Pedestrian", "Fence", "Column_Pole", "Sidewalk", "Bicyclist",
    )  # fmt: skip
    assert CAMVID_PALETTE[0] == (128, 0, 0) and CAMVID_PALETTE[2] == (128, 128, 128)
    assert CAMVID_PALETTE[9] == (60, 40, 222) and len(CAMVID_PALETTE) == 11


def test_segnet_layout_remaps_labels_and_returns_rgb(tmp_path):
    image_path = write_pair(tmp_path, "train", "a", every_segnet_index())
    bgr = np.zeros((4, 12, 3), np.uint8)
    bgr[..., 2] = 255  # pure red in OpenCV's BGR order
    cv2.imwrite(str(image_path), bgr)
    for cache in (False, True):
        ds = CamVid(tmp_path, "train", cache=cache)
        image, label = ds[0]
        assert label.dtype == np.uint8 and image.dtype == np.uint8
        assert label[0].tolist() == [SEGNET_EXPECTED[i] for i in range(12)]
        assert image[0, 0].tolist() == [255, 0, 0]
    assert (ds.num_classes, ds.ignore_index, ds.class_names) == (11, 255, CAMVID_CLASSES)


def test_jpeg_images_pair_with_png_labels_by_stem(tmp_path):
    write_pair(tmp_path, "val", "f1", np.zeros((8, 8)), ext=".jpg")
    write_pair(tmp_path, "val", "f2", np.ones((8, 8)), ext=".jpg")
    ds = CamVid(tmp_path, "val")
    assert [(image.name, label.name) for image, label in ds.pairs] == [("f1.jpg", "f1.png"), ("f2.jpg", "f2.png")]
    assert ds[1][1].max() == 0  # SegNet Building (1) is canonical 0


def test_list_format_skips_comments_and_keeps_canonical_labels(tmp_path):
    label = np.array([[0, 10], [255, 5]], np.uint8)
    write_pair(tmp_path, "img", "x", label)
    lines = ["# camvid-11 list", "", "img/x.png imgannot/x.png", "   ", "img/x.png  imgannot/x.png"]
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    ds = CamVid(tmp_path, "val", list_file=tmp_path / "list.txt")
    assert len(ds) == 2 and ds.pairs[0] == (tmp_path / "img/x.png", tmp_path / "imgannot/x.png")
    assert ds[0][1].tolist() == label.tolist()


def test_list_format_malformed_line_names_file_and_line(tmp_path):
    write_pair(tmp_path, "img", "x", np.zeros((2, 2)))
    (tmp_path / "bad.txt").write_text("img/x.png imgannot/x.png\n\nimg/x.png\n")
    with pytest.raises(DataError, match=r"bad\.txt line 3"):
        CamVid(tmp_path, list_file=tmp_path / "bad.txt")
    (tmp_path / "gone.txt").write_text("img/x.png imgannot/missing.png\n")
    with pytest.raises(DataError, match="missing.png"):
        CamVid(tmp_path, list_file=tmp_path / "gone.txt")


def test_list_format_rejects_segnet_unlabelled_value(tmp_path):
    write_pair(tmp_path, "img", "x", np.full((2, 2), 11))
    (tmp_path / "l.txt").write_text("img/x.png imgannot/x.png\n")
    with pytest.raises(DataError, match=r"x\.png.*\[11\]"):
        CamVid(tmp_path, list_file=tmp_path / "l.txt", cache=True)


def test_missing_split_and_empty_dataset(tmp_path):
    with pytest.raises(DataError, match="test"):
        CamVid(tmp_path, "test")
    with pytest.raises(DataError, match="nonsense"):
        CamVid(tmp_path, "nonsense")
    (tmp_path / "train").mkdir()
    (tmp_path / "trainannot").mkdir()
    with pytest.raises(DataError, match="no image/label pairs"):
        CamVid(tmp_path, "train")


def test_missing_label_names_expected_file(tmp_path):
    write_pair(tmp_path, "train", "ok", np.zeros((4, 4)))
    write_pair(tmp_path, "train", "lonely", np.zeros((4, 4)))
    (tmp_path / "trainannot" / "lonely.png").unlink()
    with pytest.raises(DataError, match="lonely.png"):
        CamVid(tmp_path, "train")


def test_size_mismatch_names_both_files(tmp_path):
    image_path = write_pair(tmp_path, "train", "a", np.zeros((4, 6)))
    cv2.imwrite(str(image_path), np.zeros((5, 6, 3), np.uint8))
    with pytest.raises(DataError, match=r"a\.png is 5x6.*trainannot.a\.png is 4x6"):
        CamVid(tmp_path, "train")


def test_corrupt_image_names_file(tmp_path):
    image_path = write_pair(tmp_path, "train", "noise", np.zeros((4, 4)))
    image_path.write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.raises(DataError, match="noise.png"):
        CamVid(tmp_path, "train")


def test_truncated_png_found_lazily_or_up_front(tmp_path):
    image_path = write_pair(tmp_path, "train", "cut", np.zeros((40, 60)))
    data = image_path.read_bytes()
    image_path.write_bytes(data[: len(data) // 2])
    ds = CamVid(tmp_path, "train")  # the header is intact, so only decoding finds it
    with pytest.raises(DataError, match=r"cut\.png.*truncated"):
        ds[0]
    with pytest.raises(DataError, match=r"cut\.png"):
        CamVid(tmp_path, "train", cache=True)


def test_label_value_outside_classes_names_file_and_values(tmp_path):
    label = np.zeros((4, 4), np.uint8)
    label[0, 0], label[1, 1] = 12, 40
    write_pair(tmp_path, "val", "odd", label)
    with pytest.raises(DataError, match=r"valannot.odd\.png.*\[12, 40\]"):
        CamVid(tmp_path, "val", cache=True)


def test_set_epoch_changes_augmentation_reproducibly(tmp_path):
    for k in range(3):
        write_pair(tmp_path, "train", f"f{k}", np.random.default_rng(k).integers(0, 12, (48, 64)))
    ds = CamVid(tmp_path, "train", transform=train_transform(short_side=48, crop_size=32), seed=7)
    first = ds[1]
    ds.set_epoch(1)
    assert not torch.equal(ds[1][0], first[0])
    ds.set_epoch(0)
    assert torch.equal(ds[1][0], first[0]) and torch.equal(ds[1][1], first[1])
    again = CamVid(tmp_path, "train", transform=train_transform(short_side=48, crop_size=32), seed=7)
    assert torch.equal(again[1][0], first[0])
    # Same batches whatever the number of worker processes.
    loaders = [torch.utils.data.DataLoader(ds, batch_size=3, num_workers=n) for n in (0, 2)]
    (x0, y0), (x2, y2) = (next(iter(loader)) for loader in loaders)
    assert torch.equal(x0, x2) and torch.equal(y0, y2)


@pytest.mark.parametrize("split,count", [("train", 24), ("val", 8)])
def test_builtin_sample_loads(split, count):
    ds = CamVid(SAMPLE_ROOT, split, cache=True)
    assert len(ds) == count
    for index in range(len(ds)):
        image, label = ds.load_raw(index)
        assert image.shape == (180, 240, 3) and label.shape == (180, 240)
        assert np.isin(label, list(range(11)) + [255]).all()


def test_cache_holds_resized_frames_and_gives_the_samples_of_the_files():
    # The cache keeps frames at the pipeline's short side (decoded on several threads): the same
    # samples as reading the files each time, while load_raw (label counts, reports) stays native.
    transform = train_transform(short_side=120, crop_size=96, photometric=0.5)
    cached, direct = (CamVid(SAMPLE_ROOT, "train", transform=transform, cache=cache) for cache in (True, False))
    assert cached._prepared[0][0].shape == (120, 160, 3) and cached.load_raw(0)[0].shape == (180, 240, 3)
    for index in (0, 5, 23):
        assert np.array_equal(cached.load_raw(index)[1], direct.load_raw(index)[1])
        (a_image, a_label), (b_image, b_label) = cached[(index, 0, 3)], direct[(index, 0, 3)]
        assert torch.equal(a_image, b_image) and torch.equal(a_label, b_label)


@pytest.mark.skipif(not CAMVID_ROOT.is_dir(), reason="CamVid not present beside the repo")
def test_real_camvid_val_loads():
    ds = CamVid(CAMVID_ROOT, "val")
    assert len(ds) == 101
    image, label = ds[0]
    assert image.shape == (360, 480, 3) and label.shape == (360, 480)


def test_label_order_reads_segnet_label_files_through_a_list(tmp_path):
    write_pair(tmp_path, "train", "a", every_segnet_index())
    (tmp_path / "l.txt").write_text("train/a.png trainannot/a.png\n")
    ds = CamVid(tmp_path, "dev", list_file=tmp_path / "l.txt", label_order="segnet")
    assert ds[0][1][0].tolist() == [SEGNET_EXPECTED[i] for i in range(12)]
    with pytest.raises(DataError, match=r"\[11\]"):  # auto: a list holds canonical labels
        CamVid(tmp_path, "dev", list_file=tmp_path / "l.txt", cache=True)
    with pytest.raises(DataError, match="label_order 'segnet11'.*auto, segnet, canonical"):
        CamVid(tmp_path, "train", label_order="segnet11")
