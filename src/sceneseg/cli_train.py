"""The training commands of the command line: `sceneseg train` and `sceneseg study`.

Kept apart from cli.py, which declares every command; the training modules are imported inside
the commands, so that `sceneseg --help` and the inference commands do not load them.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .checkpoint import budget_off, check_output_folder, checkpoint_to_resume, run_state
from .config import SAMPLE, Config, load_config
from .errors import SceneSegError
from .metrics import format_metrics

if TYPE_CHECKING:
    from .distributed import Distributed

FULL_CAMVID_CONFIG = "camvid_simple_r18_15min_cpu"  # what the sample run is a miniature of


def train_command(args: argparse.Namespace) -> int:
    from .distributed import init_from_env

    config = load_config(args.config, args.overrides)
    run_dir = Path(config.train.out_dir)
    check_output_folder(run_dir, "train.out_dir")
    if args.resume:
        resume = checkpoint_to_resume(config, run_dir)
    else:
        state = run_state(run_dir, config)
        if state != "new":
            longer = f" with {budget_off(config)}train.epochs=<more>" if state == "finished" else ""
            raise SceneSegError(
                f"{run_dir} already holds a run (last.pt, {state}); pass --resume{longer} to continue "
                "it, or choose another folder with train.out_dir=..."
            )
        resume = None
    # Every process of a torchrun job gets here with the same arguments; from here on, rank 0
    # alone writes and prints.
    dist = init_from_env(config.device)
    try:
        return _train_and_evaluate(args, config, run_dir, resume, dist)
    finally:
        dist.cleanup()


def _train_and_evaluate(
    args: argparse.Namespace, config: Config, run_dir: Path, resume: dict | None, dist: Distributed
) -> int:
    from .phases import format_phases
    from .stopping import StopRequest, TrainingStopped, stop_on_signals
    from .training import train_and_evaluate

    say = print if dist.is_main else (lambda *a, **k: None)
    request = StopRequest()
    try:
        summary = train_and_evaluate(
            config,
            run_dir,
            resume=resume,
            show_progress=not args.no_progress,
            log=lambda message: say(message, flush=True),
            dist=dist,
            should_stop=request,
            stop_scope=lambda: stop_on_signals(request),  # the epochs only, not the final evaluation
        )
    except TrainingStopped as stop:
        resumable = stop.checkpoint is not None
        again = [
            "sceneseg",
            "train",
            *([args.config] if args.config else []),
            *args.overrides,
            *(["--resume"] if resumable else []),
            *(["--no-progress"] if args.no_progress else []),
        ]
        command = shlex.join(again)
        if dist.enabled:
            command = f"torchrun <the same torchrun options> -m {command}"
        how = "Resume with" if resumable else "Start it again with"
        say(f"sceneseg: {stop}. {how}:\n  {command}", file=sys.stderr, flush=True)
        # Another rank's signal stopped this one: report it as a termination request.
        return 128 + (request.signum or signal.SIGTERM)
    say(format_metrics(summary))
    say("\n" + format_phases(summary["phases"]))
    if dist.is_main:  # rank 0 wrote the folder; on another node it need not exist
        outputs = sorted(p.name + "/" * p.is_dir() for p in run_dir.iterdir() if not p.name.startswith("."))
        say(f"\noutputs in {run_dir}/: {', '.join(outputs)}")
    say(next_steps(config, run_dir))
    return 0


def next_steps(config: Config, run_dir: Path) -> str:
    """What to run after a training: predict with its best.pt; after the built-in sample, also the
    full-size CamVid training the sample is a miniature of."""
    best, out = shlex.quote(str(run_dir / "best.pt")), shlex.quote(str(run_dir / "predictions"))
    from .builders import data_root

    # CamVid's layout: a folder a split; a split from list files (data.val_list) has no folder to give.
    folder = data_root(config.data) / config.data.val_split if config.data.root == SAMPLE else None
    if folder is not None and folder.is_dir():
        frames = shlex.quote(str(folder))
        return (
            "next: segment the sample's val frames with this run, then train on the full CamVid "
            "(add data.root=DIR for a copy elsewhere):\n"
            f"  sceneseg predict {best} {frames} --out {out}\n"
            f"  sceneseg train {FULL_CAMVID_CONFIG}"
        )
    return (
        "next: segment images, folders or videos with the best weights, or score them on another split:\n"
        f"  sceneseg predict {best} <images or folders> --out {out}\n"
        f"  sceneseg evaluate {best} --split <split>"
    )


def study_command(args: argparse.Namespace) -> int:
    from .stopping import StopRequest, TrainingStopped, stop_on_signals
    from .study import load_study, run_study
    from .training import train_and_evaluate

    settings = [o.removeprefix("study.") for o in args.overrides if o.startswith("study.")]
    overrides = [o for o in args.overrides if not o.startswith("study.")]
    study = load_study(args.study, settings)
    print(f"study {study.name}: {len(study.rows)} rows into {study.out_dir}/")
    request = StopRequest()
    try:
        failures = run_study(
            study,
            overrides,
            lambda config, resume: train_and_evaluate(
                config,
                Path(config.train.out_dir),
                resume,
                show_progress=not args.no_progress,
                should_stop=request,
                stop_scope=lambda: stop_on_signals(request),  # each row's epochs, as in `train`
            ),
            only=args.only,
        )
    except TrainingStopped as stop:
        again = shlex.join(
            ["sceneseg", "study", args.study, *args.overrides, *(["--only", *args.only] if args.only else [])]
        )
        print(f"sceneseg: {stop}. Finished rows are kept; continue with:\n  {again}", file=sys.stderr)
        return 128 + (request.signum or signal.SIGTERM)
    if not args.no_report:
        from .report import build_report

        run_dirs = [
            Path(study.out_dir) / row.name
            for row in study.rows
            if (Path(study.out_dir) / row.name / "metrics.json").is_file()
        ]
        out = Path(study.out_dir) / "report"
        build_report(
            run_dirs,
            out,
            study.report,
            title=f"Study {study.name}",
            intro=study.description,
            show_progress=not args.no_progress,
        )
        print(f"\nreport: {out / 'index.html'} (open it in a browser) and {out / 'README.md'}")
    if failures:
        raise SceneSegError(
            f"{len(failures)} row(s) failed ({', '.join(name for name, _ in failures)}), "
            f"see above; the other rows are done"
        )
    return 0
