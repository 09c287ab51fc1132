"""The `sceneseg` command line: train, evaluate, data check, predict, export.

This is the only module that reads config files. Errors caused by input (files, values,
checkpoints) are printed as one line with a hint, never as a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from .checkpoint import checkpoint_to_resume, load_checkpoint, write_text_atomic
from .config import SAMPLE, Config, config_from_dict, load_config
from .errors import SceneSegError
from .metrics import format_metrics

if TYPE_CHECKING:
    from .distributed import Distributed


def _train(args: argparse.Namespace) -> int:
    from .distributed import init_from_env

    config = load_config(args.config, args.overrides)
    run_dir = Path(config.train.out_dir)
    if args.resume:
        resume = checkpoint_to_resume(config, run_dir)
    elif (run_dir / "last.pt").exists():
        raise SceneSegError(
            f"{run_dir} already holds a run (last.pt); pass --resume to continue it, or choose another "
            f"folder with train.out_dir=..."
        )
    else:
        resume = None
    # Every process of a torchrun job gets here with the same arguments; from here on, rank 0
    # alone writes and prints.
    dist = init_from_env(config.device)
    try:
        return _train_and_evaluate(args, config, run_dir, resume, dist)
    finally:
        dist.cleanup()


def _train_and_evaluate(args: argparse.Namespace, config: Config, run_dir: Path, resume: dict | None,
                        dist: Distributed) -> int:
    from .stopping import TrainingStopped, stop_on_signals
    from .training import train_and_evaluate

    say = print if dist.is_main else (lambda *a, **k: None)
    # The handlers cover the epochs only: the final evaluation is not resumable part-way, and a
    # signal there ends it as usual (--resume then runs just the evaluation).
    with stop_on_signals() as request:
        try:
            summary = train_and_evaluate(config, run_dir, resume=resume, show_progress=not args.no_progress,
                                         log=lambda message: say(message, flush=True), dist=dist,
                                         should_stop=request)
        except TrainingStopped as stop:
            again = ["sceneseg", "train", *([args.config] if args.config else []), *args.overrides, "--resume",
                     *(["--no-progress"] if args.no_progress else [])]
            command = shlex.join(again)
            if dist.enabled:
                command = f"torchrun <the same torchrun options> -m {command}"
            say(f"sceneseg: {stop}. Resume with:\n  {command}", file=sys.stderr, flush=True)
            # Another rank's signal stopped this one: report it as a termination request.
            return 128 + (request.signum or signal.SIGTERM)
    say(format_metrics(summary))
    say(f"\noutputs in {run_dir}/: metrics.json, history.json, history.csv, best.pt, last.pt")
    return 0


def _study(args: argparse.Namespace) -> int:
    from .stopping import TrainingStopped, stop_on_signals
    from .study import load_study, run_study
    from .training import train_and_evaluate

    settings = [o.removeprefix("study.") for o in args.overrides if o.startswith("study.")]
    overrides = [o for o in args.overrides if not o.startswith("study.")]
    study = load_study(args.study, settings)
    print(f"study {study.name}: {len(study.rows)} rows into {study.out_dir}/")
    with stop_on_signals() as request:
        try:
            failures = run_study(study, overrides, lambda config, resume: train_and_evaluate(
                config, Path(config.train.out_dir), resume, show_progress=not args.no_progress,
                should_stop=request), only=args.only)
        except TrainingStopped as stop:
            again = shlex.join(["sceneseg", "study", args.study, *args.overrides,
                                *(["--only", *args.only] if args.only else [])])
            print(f"sceneseg: {stop}. Finished rows are kept; continue with:\n  {again}", file=sys.stderr)
            return 128 + (request.signum or signal.SIGTERM)
    if not args.no_report:
        from .report import build_report

        run_dirs = [Path(study.out_dir) / row.name for row in study.rows
                    if (Path(study.out_dir) / row.name / "metrics.json").is_file()]
        out = Path(study.out_dir) / "report"
        build_report(run_dirs, out, study.report, title=f"Study {study.name}", intro=study.description,
                     show_progress=not args.no_progress)
        print(f"\nreport: {out / 'index.html'} (open it in a browser) and {out / 'README.md'}")
    if failures:
        raise SceneSegError(f"{len(failures)} row(s) failed ({', '.join(name for name, _ in failures)}), "
                            f"see above; the other rows are done")
    return 0


def _report(args: argparse.Namespace) -> None:
    from .report import build_report
    from .study import ReportSettings

    settings = ReportSettings(compare=tuple(args.compare or ()), frames=tuple(args.frames or ()), pick=args.pick,
                              count=args.count)
    build_report([Path(d) for d in args.run_dirs], Path(args.out), settings, title=args.title)
    print(f"written {Path(args.out) / 'index.html'} (self-contained) and {Path(args.out) / 'README.md'}")


def _evaluate(args: argparse.Namespace) -> None:
    from .training import evaluate_weights

    checkpoint = load_checkpoint(args.checkpoint)
    overrides = list(args.overrides)
    if args.root:
        overrides.append(f"data.root={args.root}")
    config = config_from_dict(checkpoint["config"], overrides)
    summary = evaluate_weights(config, checkpoint["model"], args.split, mode=args.mode,
                               show_progress=not args.no_progress)
    print(format_metrics(summary))
    out = Path(args.out) if args.out else Path(args.checkpoint).with_name(f"eval_{args.split}.json")
    write_text_atomic(out, json.dumps(summary, indent=2) + "\n")
    print(f"\nwritten {out}")


def _data_check(args: argparse.Namespace) -> None:
    from .data import CamVid, KittiRoad, format_summary, summarize
    from .training import build_dataset

    target = Path(args.target)
    if target.suffix in (".yaml", ".yml") or args.target == SAMPLE:
        config = load_config(None if args.target == SAMPLE else target, args.overrides).data
        # No cache: summarize decodes every pair once anyway.
        dataset = build_dataset(dataclasses.replace(config, cache=False), args.split, "whole")
    elif (target / "training" / "image_2").is_dir():
        dataset = KittiRoad(target, args.split, policy=args.policy)
    else:
        dataset = CamVid(target, args.split, list_file=args.list)
    summary = summarize(dataset)
    print(f"{dataset!r}: OK")
    print(format_summary(summary, dataset.class_names))


def _predict(args: argparse.Namespace) -> None:
    from tqdm import tqdm  # writes between progress bars instead of through them

    from .predict_files import load_predictor, predict_paths

    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_predictor(args.checkpoint, device)
    # Options not given keep the checkpoint's eval settings ("native": the frame's own size).
    given = {"mode": args.mode, "short_side": args.short_side, "crop_size": args.crop_size, "flip": args.flip,
             "scales": tuple(args.scales) if args.scales else None}
    given = {k: (None if v == "native" else v) for k, v in given.items() if v is not None}
    settings = dataclasses.replace(model.inference_settings, **given)
    report = predict_paths(model, args.inputs, args.out, settings, batch_size=args.batch_size, alpha=args.alpha,
                           bf16=args.bf16, show_progress=not args.no_progress,
                           on_failure=lambda message: tqdm.write(f"sceneseg: error: {message}", file=sys.stderr))
    print(f"written {len(report.written)} files to {args.out}")
    if report.failures:
        raise SceneSegError(f"{len(report.failures)} input(s) failed, listed above; the others were written")


def _export(args: argparse.Namespace) -> None:
    from .api import load_model
    from .export import export_onnx

    out = Path(args.out) if args.out else Path(args.checkpoint).with_suffix(".onnx")
    error = export_onnx(load_model(args.checkpoint), out)
    print(f"written {out}: input 'image' (N, 3, H, W), output 'logits' (N, C, H, W), N/H/W dynamic; "
          f"largest difference to PyTorch {error:.1e} of the logit range")


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
    train.set_defaults(func=_train)

    study = commands.add_parser("study", help="run every row of a study (skips finished rows), then its report")
    study.add_argument("study", help="a study YAML, or the name of a built-in study (e.g. camvid_study_cpu)")
    study.add_argument("overrides", nargs="*", default=[],
                       help="key=value for every row's config (train.epochs=3); study.VARIABLE=value for the study")
    study.add_argument("--only", nargs="+", default=[], metavar="ROW", help="run just these rows")
    study.add_argument("--no-report", action="store_true", help="do not build the report at the end")
    study.add_argument("--no-progress", action="store_true")
    study.set_defaults(func=_study)

    report = commands.add_parser("report", help="HTML and Markdown report of finished runs")
    report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (with metrics.json)")
    report.add_argument("--out", required=True, help="output folder (index.html, README.md and PNG files)")
    report.add_argument("--compare", nargs=2, metavar="RUN", help="two runs (folder names) shown side by side")
    report.add_argument("--frames", nargs="+", metavar="NAME", help="val frames for the qualitative grids")
    report.add_argument("--pick", choices=("worst", "best"), default="worst",
                        help="without --frames: the frames with the lowest or highest per-image mIoU")
    report.add_argument("--count", type=int, default=3, help="frames picked (default 3)")
    report.add_argument("--title", default="sceneseg report")
    report.set_defaults(func=_report)

    evaluate = commands.add_parser("evaluate", help="evaluate a checkpoint")
    evaluate.add_argument("checkpoint")
    evaluate.add_argument("overrides", nargs="*", help="dotted key=value overrides of the stored config", default=[])
    evaluate.add_argument("--root", help="data root (default: the one the model was trained on)")
    evaluate.add_argument("--split", default="val", help="train, val or test (default val)")
    evaluate.add_argument("--mode", choices=("whole", "slide", "crop"), help="default: the config's eval.mode")
    evaluate.add_argument("--out", help="metrics JSON (default: eval_<split>.json beside the checkpoint)")
    evaluate.add_argument("--no-progress", action="store_true")
    evaluate.set_defaults(func=_evaluate)

    data = commands.add_parser("data", help="dataset tools")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    check = data_commands.add_parser("check", help="validate a dataset and print class pixel shares")
    check.add_argument("target", help=f"a config YAML, a data root, or {SAMPLE}")
    check.add_argument("overrides", nargs="*")
    check.add_argument("--split", default="train")
    check.add_argument("--list", help="list file (<image> <label> per line) when target is a root")
    check.add_argument("--policy", default="kitti", choices=("kitti", "cs6476"), help="KITTI road label policy")
    check.set_defaults(func=_data_check)

    predict = commands.add_parser("predict", help="segment images, folders and videos; write label maps and overlays")
    predict.add_argument("checkpoint", help="a sceneseg or reference PSPNet checkpoint, or an exported .onnx file")
    predict.add_argument("inputs", nargs="+", help="image files, folders of images, video files")
    predict.add_argument("--out", required=True, help="output folder")
    predict.add_argument("--mode", choices=("whole", "slide"), help="default: the checkpoint's eval.mode")
    predict.add_argument("--short-side", type=_short_side, help="resize frames to this short side, or 'native'")
    predict.add_argument("--crop-size", type=int, help="sliding window size (--mode slide)")
    predict.add_argument("--flip", action=argparse.BooleanOptionalAction, help="average with the mirrored frame")
    predict.add_argument("--scales", type=float, nargs="+", help="multi-scale factors on the short side")
    predict.add_argument("--batch-size", type=int, default=4, help="frames per forward pass (default 4)")
    predict.add_argument("--alpha", type=float, default=0.5, help="weight of the colours in overlays (default 0.5)")
    predict.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="for PyTorch checkpoints")
    predict.add_argument("--bf16", action="store_true", help="bfloat16 autocast (PyTorch checkpoints)")
    predict.add_argument("--no-progress", action="store_true")
    predict.set_defaults(func=_predict)

    export = commands.add_parser("export", help="export a checkpoint to ONNX (dynamic batch, height and width)")
    export.add_argument("checkpoint")
    export.add_argument("--out", help="ONNX file (default: the checkpoint's name with .onnx)")
    export.set_defaults(func=_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else 2
    if getattr(args, "config", None) and "=" in args.config:
        # argparse cannot tell an override from an omitted config: `sceneseg train train.epochs=2`.
        args.overrides.insert(0, args.config)
        args.config = None
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
