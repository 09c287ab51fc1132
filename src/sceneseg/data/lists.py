"""List files (one `<image> <label>` pair per line) and splits that hold out whole sequences.

A sequence is a run of video frames that share a name prefix (CamVid: 0001TP, 0006R0, 0016E5, Seq05VD).
Frames of one sequence look alike, so a model scored on frames of a sequence it trained on is
flattered; holding out whole sequences measures it on streets it has not seen.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sceneseg.errors import DataError

Pairs = list[tuple[Path, Path]]


def read_list_file(list_file: Path, root: Path) -> list[tuple[Path, Path]]:
    """List format: one `<image> <label>` pair per line, relative to root; '#' marks a comment line."""
    if not list_file.is_file():
        raise DataError(f"list file {list_file} does not exist; expected a text file of image/label lines")
    pairs = []
    for number, line in enumerate(list_file.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) != 2:
            raise DataError(
                f"{list_file} line {number}: {line.strip()!r} has {len(fields)} fields; "
                f"expected '<image> <label>' relative to {root}"
            )
        pair = (root / fields[0], root / fields[1])
        for path in pair:
            if not path.is_file():
                raise DataError(f"{path} (in {list_file} line {number}) does not exist; expected a file")
        pairs.append(pair)
    return pairs


def format_list_file(pairs: Pairs, root: Path) -> str:
    """The list-file text of `pairs`: paths relative to `root` where they lie under it, else absolute."""

    def relative(path: Path) -> str:
        path = path.resolve()
        return str(path.relative_to(root.resolve())) if path.is_relative_to(root.resolve()) else str(path)

    return "".join(f"{relative(image)} {relative(label)}\n" for image, label in pairs)


def sequence_name(image: Path) -> str:
    """A frame's sequence: its file name up to the first underscore (CamVid's 0006R0_f02340.png)."""
    return image.stem.split("_", 1)[0]


def sequence_split(pairs: Pairs, held_out: list[str]) -> tuple[Pairs, Pairs]:
    """(kept, held) pairs: held are the frames whose name starts with one of the `held_out` prefixes."""
    if not held_out:
        raise DataError("no sequences to hold out; expected one or more frame-name prefixes, e.g. 0006R0")
    sequences = Counter(sequence_name(image) for image, _ in pairs)
    for prefix in held_out:
        if not any(image.name.startswith(prefix) for image, _ in pairs):
            found = ", ".join(f"{name} ({count} frames)" for name, count in sorted(sequences.items()))
            raise DataError(f"no frame name starts with {prefix!r}; the sequences here are {found}")
    held = [pair for pair in pairs if pair[0].name.startswith(tuple(held_out))]
    kept = [pair for pair in pairs if not pair[0].name.startswith(tuple(held_out))]
    if not kept:
        raise DataError(f"holding out {', '.join(held_out)} leaves no frame to train on")
    return kept, held
