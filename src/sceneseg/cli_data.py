"""`sceneseg data` commands: check a dataset, and write a development split that holds out sequences."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from .checkpoint import write_text_atomic
from .config import SAMPLE, DataConfig, load_config, resolve_config_path
from .errors import ConfigError, DataError


def _uncached_data(path: Path | None, overrides: list[str]) -> DataConfig:
    """A config's data section for a tool that reads every pair once: no decoded-frame cache."""
    return dataclasses.replace(load_config(path, overrides).data, cache=False)


def data_check_command(args: argparse.Namespace) -> None:
    from .data import format_summary, summarize

    # Every split is opened before any is decoded: a missing or empty one fails in seconds.
    for dataset in _datasets_to_check(args):
        summary = summarize(dataset)
        print(f"{dataset!r}: OK")
        print(format_summary(summary, dataset.class_names))


def _datasets_to_check(args: argparse.Namespace) -> list:
    """`--split` alone, else every split: a config's train and val (checked to be disjoint), a KITTI
    root's train and val, a CamVid SegNet root's train, val and test folders that exist."""
    from .builders import build_dataset, build_train_val
    from .data import CamVid, KittiRoad

    target = Path(args.target)
    is_root = args.target != SAMPLE and target.is_dir()
    # Options that only one kind of target takes are refused with the other, not silently dropped.
    if is_root and args.overrides:
        raise ConfigError(
            f"data check {target}: overrides ({' '.join(args.overrides)}) apply to a config, not to a "
            "data root; check a config, or use --split/--list/--policy with a root"
        )
    if not is_root and (args.list or args.policy):
        raise ConfigError(
            f"data check {args.target}: --list and --policy apply to a data root, not to a config; "
            "set data.train_list/val_list or data.options.policy instead"
        )
    if not is_root:  # a config: a file, a built-in name, or the sample
        try:
            path = None if args.target == SAMPLE else resolve_config_path(args.target)
        except ConfigError as exc:
            raise DataError(f"dataset root {target} does not exist, and {exc}") from None
        config = _uncached_data(path, args.overrides)
        if args.split:
            return [build_dataset(config, "val", "whole", split=args.split)]
        return list(build_train_val(config, modes=("whole", "whole")))
    if (target / "training" / "image_2").is_dir():
        splits = [args.split] if args.split else ["train", "val"]
        policy = {"policy": args.policy} if args.policy else {}  # KittiRoad's default and check otherwise
        return [KittiRoad(target, split, **policy) for split in splits]
    if args.list:
        return [CamVid(target, args.split or "train", list_file=args.list)]
    splits = (
        [args.split]
        if args.split
        else [s for s in ("train", "val", "test") if (target / s).is_dir() or (target / f"{s}annot").is_dir()]
    )
    if not splits:
        raise DataError(
            f"{target} has no split folders; expected the SegNet layout (train/ and trainannot/, val/ and "
            "valannot/, ...), the KITTI road layout (training/image_2/), or --list FILE"
        )
    return [CamVid(target, split) for split in splits]


def data_split_command(args: argparse.Namespace) -> None:
    """Write the config's train split as two list files, holding out whole sequences for development."""
    from .builders import build_dataset, data_root
    from .data.lists import format_list_file, sequence_name, sequence_split

    config = _uncached_data(resolve_config_path(args.config), args.overrides)
    dataset = build_dataset(config, "train", "whole")
    kept, held = sequence_split(dataset.pairs, args.hold_out)
    out = Path(args.out)
    files = {"train": out / "train.txt", "heldout": out / "heldout.txt"}
    existing = [str(path) for path in files.values() if path.exists()]
    if existing:
        raise DataError(f"{', '.join(existing)} already exist; choose another --out or remove them")
    root = data_root(config)
    for name, pairs in (("train", kept), ("heldout", held)):
        write_text_atomic(files[name], format_list_file(pairs, root))
        sequences = sorted({sequence_name(image) for image, _ in pairs})
        print(f"{files[name]}: {len(pairs)} frames from {', '.join(sequences)}")
    overrides = [f"data.train_list={files['train'].resolve()}", f"data.val_list={files['heldout'].resolve()}"]
    overrides.append("data.val_split=heldout")
    if getattr(dataset, "label_order", None) == "segnet":
        overrides.append("data.options.label_order=segnet")  # the lists name SegNet-numbered label files
    print("train on the rest and validate on the held-out sequences with:\n  " + " ".join(overrides))
