"""The `sceneseg` command line: train, evaluate, data check, predict, export.

The commands are declared here; `train` and `study` live in cli_train, `data` in cli_data, and
`evaluate`, `predict` and `export`, which use a trained checkpoint, in cli_infer. The command line is what
reads config files. Errors caused by input (files, values, checkpoints) are printed as one line
with a hint, never as a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import NoReturn

from .cli_data import data_check_command, data_split_command
from .cli_infer import evaluate_command, export_command, predict_command
from .cli_train import study_command, train_command
from .config import SAMPLE, load_config, to_yaml
from .errors import ConfigError, SceneSegError
from .inference_options import EVAL_MODES, INFERENCE_MODES


def _report(args: argparse.Namespace) -> None:
    from .report import build_report
    from .study import ReportSettings

    names = [Path(d).name for d in args.run_dirs]
    unknown = [name for name in args.compare or () if name not in names]
    if unknown:  # the report would silently compare its default pair instead
        raise ConfigError(f"--compare {' '.join(unknown)}: not among the run folders ({', '.join(names)})")
    settings = ReportSettings(
        compare=tuple(args.compare or ()),
        frames=tuple(args.frames or ()),
        pick=args.pick,
        count=args.count,
        classes=tuple(args.classes or ()),
    )
    if args.reference:  # else ReportSettings' default
        settings = dataclasses.replace(settings, reference=args.reference)
    build_report(
        [Path(d) for d in args.run_dirs],
        Path(args.out),
        settings,
        title=args.title,
        show_progress=not args.no_progress,
    )
    print(f"written {Path(args.out) / 'index.html'} (self-contained) and {Path(args.out) / 'README.md'}")


def _config(args: argparse.Namespace) -> None:
    from .builders import dataset_options
    from .models import model_options

    config = load_config(args.config, args.overrides)
    # A wrong dataset or model option shows here already, not only when training.
    dataset_options(config.data)
    model_options(config.model)
    print(to_yaml(config), end="")


def _short_side(value: str) -> int | str:
    if value == "native" or value.isdigit():
        return value if value == "native" else int(value)
    raise argparse.ArgumentTypeError(f"{value!r}: expected a number of pixels or 'native'")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, like every other sceneseg error, instead of argparse's usage block.
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sceneseg", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model (no config: the built-in CamVid sample)")
    train.add_argument("config", nargs="?", help="experiment YAML (default: the built-in sample)")
    train.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.epochs=5", default=[])
    train.add_argument("--resume", action="store_true", help="continue the run in train.out_dir")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.set_defaults(func=train_command)

    show = commands.add_parser("config", help="print the complete resolved config as YAML")
    show.add_argument("config", nargs="?", help="experiment YAML or built-in config name (default: the sample)")
    show.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.epochs=5", default=[])
    show.set_defaults(func=_config)

    study = commands.add_parser("study", help="run every row of a study (skips finished rows), then its report")
    study.add_argument("study", help="a study YAML, or the name of a built-in study (e.g. camvid_study_cpu)")
    study.add_argument(
        "overrides",
        nargs="*",
        default=[],
        help="key=value for every row's config (train.epochs=3); study.VARIABLE=value for the study",
    )
    study.add_argument("--only", nargs="+", default=[], metavar="ROW", help="run just these rows")
    study.add_argument("--no-report", action="store_true", help="do not build the report at the end")
    study.add_argument("--no-progress", action="store_true")
    study.set_defaults(func=study_command)

    report = commands.add_parser("report", help="HTML and Markdown report of finished runs")
    report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (with metrics.json)")
    report.add_argument("--out", required=True, help="output folder (index.html, README.md and PNG files)")
    report.add_argument("--compare", nargs=2, metavar="RUN", help="two runs (folder names) shown side by side")
    report.add_argument("--frames", nargs="+", metavar="NAME", help="val frames for the qualitative grids")
    report.add_argument(
        "--pick",
        choices=("worst", "best"),
        default="worst",
        help="without --frames: the frames with the lowest or highest per-image mIoU",
    )
    report.add_argument("--count", type=int, default=3, help="frames picked (default 3)")
    report.add_argument(
        "--classes", nargs="+", metavar="CLASS", help="a table of every run's val IoU of these classes (an ablation's)"
    )
    report.add_argument("--title", default="sceneseg report")
    report.add_argument(
        "--reference",
        metavar="JSON",
        help="the original study's published figures (default: ../shared/reference/cs6476_study.json, "
        "relative to the working directory; missing: the report leaves the reference columns out)",
    )
    report.add_argument("--no-progress", action="store_true", help="no progress bar while predicting val frames")
    report.set_defaults(func=_report)

    evaluate = commands.add_parser("evaluate", help="evaluate a checkpoint")
    evaluate.add_argument("checkpoint", help="a run's best.pt (or another sceneseg checkpoint)")
    evaluate.add_argument("overrides", nargs="*", help="dotted key=value overrides of the stored config", default=[])
    evaluate.add_argument("--root", help="data root (default: the one the model was trained on)")
    evaluate.add_argument("--split", help="a split name, e.g. train, val or test (default: the run's data.val_split)")
    evaluate.add_argument(
        "--mode", choices=EVAL_MODES, help="default: the config's eval.mode; crop: the per-epoch centre crops"
    )
    evaluate.add_argument("--out", help="metrics JSON (default: eval_<split>.json beside the checkpoint)")
    evaluate.add_argument("--no-progress", action="store_true")
    evaluate.set_defaults(func=evaluate_command)

    data = commands.add_parser("data", help="dataset tools")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    check = data_commands.add_parser("check", help="validate a dataset and print class pixel shares")
    check.add_argument("target", help=f"a data root, a config YAML or built-in config name, or {SAMPLE}")
    check.add_argument("overrides", nargs="*", help="dotted key=value overrides of a config target", default=[])
    check.add_argument("--split", help="check this split only (default: every split)")
    check.add_argument("--list", help="list file (<image> <label> per line) when target is a root")
    check.add_argument("--policy", help="KITTI road label policy: kitti (default) or cs6476")
    check.set_defaults(func=data_check_command)
    split = data_commands.add_parser(
        "split", help="write list files that hold out whole sequences of the train split (a development split)"
    )
    split.add_argument("config", help="a config YAML or built-in config name; its train split is divided")
    split.add_argument("overrides", nargs="*", help="dotted key=value overrides of the config", default=[])
    split.add_argument("--hold-out", nargs="+", required=True, metavar="PREFIX", help="frame-name prefixes")
    split.add_argument("--out", required=True, help="folder for train.txt and heldout.txt")
    split.set_defaults(func=data_split_command)

    predict = commands.add_parser("predict", help="segment images, folders and videos; write label maps and overlays")
    predict.add_argument("checkpoint", help="a sceneseg or reference PSPNet checkpoint, or an exported .onnx file")
    predict.add_argument("inputs", nargs="+", help="image files, folders of images, video files")
    predict.add_argument("--out", required=True, help="output folder")
    predict.add_argument("--mode", choices=INFERENCE_MODES, help="default: the checkpoint's eval.mode")
    predict.add_argument("--short-side", type=_short_side, help="resize frames to this short side, or 'native'")
    predict.add_argument("--crop-size", type=int, help="sliding window size (--mode slide)")
    predict.add_argument("--flip", action=argparse.BooleanOptionalAction, help="average with the mirrored frame")
    predict.add_argument("--scales", type=float, nargs="+", help="multi-scale factors on the short side")
    predict.add_argument("--batch-size", type=int, default=4, help="frames per forward pass (default 4)")
    predict.add_argument("--alpha", type=float, default=0.5, help="weight of the colours in overlays (default 0.5)")
    predict.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="for PyTorch checkpoints")
    predict.add_argument("--bf16", action="store_true", help="bfloat16 autocast (PyTorch checkpoints)")
    predict.add_argument("--no-progress", action="store_true")
    predict.set_defaults(func=predict_command)

    export = commands.add_parser("export", help="export a checkpoint to ONNX (dynamic batch, height and width)")
    export.add_argument("checkpoint", help="a run's best.pt (or another sceneseg checkpoint)")
    export.add_argument("--out", help="ONNX file (default: the checkpoint's name with .onnx)")
    export.set_defaults(func=export_command)
    return parser


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line as a namespace; exits (status 2, usage printed) on a usage error."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse takes a command's positionals in one run, so overrides after an option
    # (`sceneseg train CONFIG --no-progress train.epochs=2`) come back unparsed: they are overrides
    # still, in the order given. Anything else left over is an error, as parse_args would say.
    stray = [arg for arg in extra if arg.startswith("-") or "=" not in arg or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    if getattr(args, "only", None):
        # `--only ROW ...` takes every word after it, overrides too (`--only enet train.epochs=3`);
        # a row name never holds "=", so those words are overrides.
        args.overrides += [word for word in args.only if "=" in word]
        args.only = [word for word in args.only if "=" not in word]
        if not args.only:
            parser.error("--only: expected at least one row name before the overrides")
    if getattr(args, "config", None) and "=" in args.config:
        # argparse cannot tell an override from an omitted config: `sceneseg train train.epochs=2`.
        args.overrides.insert(0, args.config)
        args.config = None
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_arguments(argv)
    except SystemExit as exc:  # --help, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.func(args) or 0
    except SceneSegError as exc:
        # Under torchrun every rank may fail alike; the others say which they are.
        rank = os.environ.get("RANK", "0") if "WORLD_SIZE" in os.environ else "0"
        print(f"sceneseg: error: {'' if rank == '0' else f'(rank {rank}) '}{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sceneseg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
