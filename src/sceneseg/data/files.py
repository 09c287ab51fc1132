"""Reading image and label files, with errors that name the file: truncated, undecodable, or (labels)
with values outside the classes. The datasets read their frames here, and predict its images."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from sceneseg.errors import DataError

# Marks label values that belong to no class; a label containing one is rejected.
INVALID = 254
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _read_bytes(path: Path, size: int = -1) -> bytes:
    """The first `size` bytes of a file (all of it by default)."""
    try:
        with open(path, "rb") as file:
            return file.read(size)
    except OSError as error:
        raise DataError(f"cannot read {path} ({error.strerror}); expected a readable file") from error


def _decode(path: Path, flags: int) -> np.ndarray:
    """Decode an image file, rejecting truncated ones (decoders may return half an image)."""
    data = _read_bytes(path)
    # A complete PNG ends with its IEND chunk and a JPEG with the EOI marker (allowing a little
    # trailing data, which some cameras append).
    truncated = (data.startswith(_PNG_SIGNATURE) and b"IEND" not in data[-64:]) or (
        data.startswith(b"\xff\xd8") and b"\xff\xd9" not in data[-1024:]
    )
    if truncated:
        raise DataError(f"{path} is truncated (no end marker); expected a complete PNG or JPEG file")
    # imdecode on bytes we read ourselves also copes with non-ASCII paths, unlike cv2.imread.
    array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if array is None:
        raise DataError(f"cannot decode {path}; expected a valid PNG or JPEG image")
    return array


def read_size(path: Path) -> tuple[int, int]:
    """(height, width) from the PNG header when possible, otherwise by decoding the file."""
    head = _read_bytes(path, 24)
    if head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return height, width
    return _decode(path, cv2.IMREAD_UNCHANGED).shape[:2]


def read_image(path: Path) -> np.ndarray:
    """An image (or colour label) file as a uint8 HxWx3 RGB array, in stored pixel order."""
    # Labels are drawn on the stored pixel grid; rotating by EXIF orientation would misalign them.
    bgr = _decode(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_index_label(path: Path, lut: np.ndarray, valid: str) -> np.ndarray:
    """A label PNG remapped through `lut`; values the lut marks INVALID are an error."""
    raw = _decode(path, cv2.IMREAD_UNCHANGED)
    if raw.ndim != 2 or raw.dtype != np.uint8:
        raise DataError(
            f"label {path} has shape {raw.shape} and type {raw.dtype}; "
            "expected a single-channel 8-bit PNG of class indices"
        )
    label = lut[raw]
    bad = label == INVALID
    if bad.any():
        values = np.unique(raw[bad]).tolist()
        raise DataError(f"label {path} contains values {values} outside the classes; expected {valid}")
    return label
