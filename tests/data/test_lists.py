"""List files and sequence-held-out splits."""

from __future__ import annotations

from pathlib import Path

import pytest

from sceneseg.data.lists import format_list_file, read_list_file, sequence_name, sequence_split
from sceneseg.errors import DataError


def _pairs(root: Path, names: list[str]) -> list[tuple[Path, Path]]:
    for folder in ("train", "trainannot"):
        (root / folder).mkdir(exist_ok=True)
    pairs = []
    for name in names:
        pair = (root / "train" / f"{name}.png", root / "trainannot" / f"{name}.png")
        for path in pair:
            path.write_bytes(b"")
        pairs.append(pair)
    return pairs


def test_sequence_split_holds_out_whole_sequences_in_order(tmp_path):
    pairs = _pairs(tmp_path, ["0001TP_1", "0006R0_f1", "0016E5_2", "0006R0_f2", "Seq05VD_3"])
    kept, held = sequence_split(pairs, ["0006R0", "Seq05"])
    assert [p[0].stem for p in held] == ["0006R0_f1", "0006R0_f2", "Seq05VD_3"]
    assert [p[0].stem for p in kept] == ["0001TP_1", "0016E5_2"]
    assert sequence_name(pairs[4][0]) == "Seq05VD"


def test_sequence_split_errors_name_the_prefix_and_the_sequences_found(tmp_path):
    pairs = _pairs(tmp_path, ["0001TP_1", "0001TP_2", "0006R0_1"])
    with pytest.raises(DataError, match=r"'0016E5'.*0001TP \(2 frames\), 0006R0 \(1 frames\)"):
        sequence_split(pairs, ["0016E5"])
    with pytest.raises(DataError, match="leaves no frame to train on"):
        sequence_split(pairs, ["0001TP", "0006R0"])
    with pytest.raises(DataError, match="no sequences to hold out"):
        sequence_split(pairs, [])


def test_list_text_reads_back_to_the_same_pairs(tmp_path):
    (tmp_path / "root").mkdir()
    pairs = _pairs(tmp_path / "root", ["a_1", "b_2"])
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(b"")
    pairs.append((outside, pairs[0][1]))
    text = format_list_file(pairs, tmp_path / "root")
    assert text.splitlines()[0] == "train/a_1.png trainannot/a_1.png"
    assert text.splitlines()[2].startswith(str(outside.resolve()) + " ")  # not under root: absolute
    (tmp_path / "l.txt").write_text(text)
    assert read_list_file(tmp_path / "l.txt", tmp_path / "root") == [(a.resolve(), b.resolve()) for a, b in pairs]
