"""sceneseg.predict and `sceneseg predict`: label maps, outputs for images and videos, bad inputs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import sceneseg
from sceneseg.api import preprocess
from sceneseg.checkpoint import save_checkpoint
from sceneseg.cli import main
from sceneseg.config import load_config, to_dict
from sceneseg.data import CAMVID_CLASSES, CAMVID_PALETTE, IMAGENET_MEAN, IMAGENET_STD, KITTI_PALETTE, whole_transform
from sceneseg.data.transforms import normalize_images
from sceneseg.errors import DataError
from sceneseg.inference import InferenceSettings
from sceneseg.models import build_model, pspnet, to_reference

NATIVE = InferenceSettings(mode="whole", short_side=None)


def write_checkpoint(path: Path, overrides: list[str] = (), **extra) -> Path:
    """A checkpoint as `sceneseg train` writes it (untrained ResNet-18 SimpleSegmentationNet by default)."""
    config = load_config(None, list(overrides))
    torch.manual_seed(0)
    save_checkpoint(path, config=to_dict(config), model=build_model(config.model).state_dict(), epoch=1, **extra)
    return path


def write_frames(folder: Path, rng: np.random.Generator) -> dict[str, Path]:
    """A 64x96 PNG, a 70x90 JPEG in a sub-folder and a 5-frame 64x96 MJPG video."""
    (folder / "frames").mkdir(parents=True)
    paths = {"png": folder / "street.png", "jpg": folder / "frames" / "road.jpg", "video": folder / "drive.avi"}
    cv2.imwrite(str(paths["png"]), rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))
    cv2.imwrite(str(paths["jpg"]), rng.integers(0, 256, (70, 90, 3), dtype=np.uint8))
    writer = cv2.VideoWriter(str(paths["video"]), cv2.VideoWriter_fourcc(*"MJPG"), 5, (96, 64))
    for _ in range(5):
        writer.write(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))
    writer.release()
    return paths


def test_label_map_is_the_argmax_of_the_model(tmp_path: Path) -> None:
    model = sceneseg.load_model(write_checkpoint(tmp_path / "best.pt"))
    image = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    label, probs = sceneseg.predict(model, image, NATIVE, return_probs=True)
    with torch.no_grad():
        expected = model(preprocess([image]))["out"].argmax(1)[0].numpy()
    assert label.shape == (64, 96) and label.dtype == np.uint8
    assert np.array_equal(label, expected)
    assert probs.shape == (11, 64, 96) and np.allclose(probs.sum(0), 1, atol=1e-5)
    # The documented preprocessing is the one evaluation uses.
    frame, _ = whole_transform(None)(image, np.zeros((64, 96), np.uint8), seed=0)
    assert torch.equal(preprocess([image]), normalize_images(frame[None]))
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    assert torch.allclose(preprocess([image])[0], (frame / 255 - mean) / std, atol=1e-5)
    # A file gives the same answer as its pixels; the checkpoint's eval config is the default.
    cv2.imwrite(str(tmp_path / "frame.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert np.array_equal(sceneseg.predict(model, tmp_path / "frame.png", NATIVE), label)
    assert model.inference_settings.short_side == load_config(None).eval.short_side
    assert sceneseg.predict(model, image).shape == (64, 96)
    with pytest.raises(DataError, match="expected RGB uint8"):
        sceneseg.predict(model, image.astype(np.float32))


def test_loaded_models_know_their_classes(tmp_path: Path) -> None:
    camvid = sceneseg.load_model(write_checkpoint(tmp_path / "a.pt", ["eval.mode=slide", "eval.flip=true"]))
    assert camvid.class_names == CAMVID_CLASSES and camvid.palette == CAMVID_PALETTE
    assert camvid.inference_settings.mode == "slide" and camvid.inference_settings.flip
    kitti = sceneseg.load_model(
        write_checkpoint(
            tmp_path / "k.pt", ["data.dataset=kitti_road", "model.num_classes=2"], class_names=["Road", "Not_Road"]
        )
    )
    assert kitti.class_names == ("Road", "Not_Road") and kitti.palette == KITTI_PALETTE
    folder = sceneseg.load_model(
        write_checkpoint(
            tmp_path / "f.pt",
            [
                "data.dataset=folder",
                "model.num_classes=2",
                "data.options.class_names=[lane, rest]",
                "data.options.palette=[[1, 2, 3], [4, 5, 6]]",
            ],
        )
    )
    assert folder.class_names == ("lane", "rest") and folder.palette == ((1, 2, 3), (4, 5, 6))
    for classes in (11, 5):  # reference checkpoints: CamVid's names for 11 classes, generic ones else
        state = to_reference(pspnet(classes, "resnet18", use_ppm=False).state_dict())
        torch.save({"state_dict": state}, tmp_path / "ref.pth")
        reference = sceneseg.load_model(tmp_path / "ref.pth")
        if classes == 11:
            assert reference.class_names == CAMVID_CLASSES and reference.palette == CAMVID_PALETTE
        else:
            assert reference.class_names[4] == "class_4" and len(set(reference.palette)) == 5


def test_cli_writes_every_output_at_the_input_size(tmp_path: Path) -> None:
    checkpoint = write_checkpoint(tmp_path / "best.pt")
    paths = write_frames(tmp_path / "in", np.random.default_rng(1))
    out = tmp_path / "out"
    code = main(
        [
            "predict",
            str(checkpoint),
            str(paths["png"]),
            str(paths["jpg"].parent),
            str(paths["video"]),
            "--out",
            str(out),
            "--short-side",
            "native",
            "--batch-size",
            "2",
            "--no-progress",
        ]
    )
    assert code == 0
    model = sceneseg.load_model(checkpoint)
    for name, path, size in (("street", paths["png"], (64, 96)), ("road", paths["jpg"], (70, 90))):
        label = cv2.imread(str(out / f"{name}_label.png"), cv2.IMREAD_UNCHANGED)
        assert label.shape == size and label.dtype == np.uint8
        assert np.array_equal(label, sceneseg.predict(model, path, NATIVE))
        for kind in ("color", "overlay"):
            assert cv2.imread(str(out / f"{name}_{kind}.png")).shape == (*size, 3)
    video = cv2.VideoCapture(str(out / "drive_overlay.mp4"))
    frames = []
    while (frame := video.read())[0]:
        frames.append(frame[1])
    video.release()
    assert len(frames) == 5 and frames[0].shape == (64, 96, 3)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["drive_overlay.mp4"] + [f"{n}_{k}.png" for n in ("street", "road") for k in ("label", "color", "overlay")]
    )


def test_cli_reports_bad_inputs_and_writes_the_others(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    checkpoint = write_checkpoint(tmp_path / "best.pt")
    paths = write_frames(tmp_path / "in", np.random.default_rng(2))
    bad = {
        "broken.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 40 + b"IEND",
        "broken.mp4": b"no video here" * 20,
        "notes.txt": b"hello",
    }
    for name, content in bad.items():
        (tmp_path / "in" / name).write_bytes(content)
    out = tmp_path / "out"
    inputs = [str(tmp_path / "in" / name) for name in bad] + [
        str(tmp_path / "missing.jpg"),
        str(paths["png"]),
        str(paths["video"]),
    ]
    code = main(["predict", str(checkpoint), *inputs, "--out", str(out), "--short-side", "native", "--no-progress"])
    assert code == 2
    errors = capsys.readouterr().err
    for name in [*bad, "missing.jpg"]:
        assert name in errors
    assert "unsupported file type .txt" in errors and "4 input(s) failed" in errors
    assert sorted(p.name for p in out.iterdir()) == [
        "drive_overlay.mp4",
        "street_color.png",
        "street_label.png",
        "street_overlay.png",
    ]  # no temporary files


def test_cli_rejects_a_file_that_is_no_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    paths = write_frames(tmp_path / "in", np.random.default_rng(3))
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    for name in ("other.pt", "junk.pt"):
        code = main(["predict", str(tmp_path / name), str(paths["png"]), "--out", str(tmp_path / "out")])
        assert code == 2 and name in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "option, message",
    [
        (["--batch-size", "0"], "batch size 0: expected at least 1 frame per forward pass"),
        (["--alpha", "1.5"], "alpha 1.5: expected a weight between 0 and 1 for the overlay colours"),
    ],
)
def test_predict_names_the_one_option_that_is_out_of_range(option, message, tmp_path, capsys) -> None:
    checkpoint = write_checkpoint(tmp_path / "best.pt")
    paths = write_frames(tmp_path / "in", np.random.default_rng(1))
    assert main(["predict", str(checkpoint), str(paths["png"]), "--out", str(tmp_path / "out"), *option]) == 2
    err = capsys.readouterr().err
    assert message in err and ("alpha" in message) == ("alpha" in err)
    assert not (tmp_path / "out").exists()
