"""`sceneseg evaluate`, `predict` and `export`: the commands that use a trained checkpoint. predict and
export load only the inference side; evaluate scores with the evaluation that training uses too."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from .checkpoint import check_output_file, load_checkpoint, write_text_atomic
from .config import config_from_dict
from .errors import SceneSegError
from .metrics import format_metrics


def evaluate_command(args: argparse.Namespace) -> None:
    from .evaluation import crop_mode_ignores, evaluate_weights

    checkpoint = load_checkpoint(args.checkpoint)
    overrides = list(args.overrides)
    if args.root:
        overrides.append(f"data.root={args.root}")
    config = config_from_dict(checkpoint["config"], overrides)
    split = args.split or config.data.val_split  # the split the run validated on, whatever its name
    out = Path(args.out) if args.out else Path(args.checkpoint).with_name(f"eval_{split}.json")
    check_output_file(out, "--out")  # before the evaluation, not after it
    unused = crop_mode_ignores(config.eval, args.mode)
    if unused:
        print(f"note: mode crop scores centre crops as the per-epoch validation does; {', '.join(unused)} do not apply")
    summary = evaluate_weights(config, checkpoint["model"], split, mode=args.mode, show_progress=not args.no_progress)
    print(format_metrics(summary))
    write_text_atomic(out, json.dumps(summary, indent=2) + "\n")
    print(f"\nwritten {out}")


def predict_command(args: argparse.Namespace) -> None:
    from tqdm import tqdm  # writes between progress bars instead of through them

    from .inference import resolve_device
    from .predict_files import load_predictor, predict_paths

    model = load_predictor(args.checkpoint, str(resolve_device(args.device)))
    # Options not given keep the checkpoint's eval settings ("native": the frame's own size).
    given = {
        "mode": args.mode,
        "short_side": args.short_side,
        "crop_size": args.crop_size,
        "flip": args.flip,
        "scales": tuple(args.scales) if args.scales else None,
    }
    given = {k: (None if v == "native" else v) for k, v in given.items() if v is not None}
    settings = dataclasses.replace(model.inference_settings, **given)
    report = predict_paths(
        model,
        args.inputs,
        args.out,
        settings,
        batch_size=args.batch_size,
        alpha=args.alpha,
        bf16=args.bf16,
        show_progress=not args.no_progress,
        on_failure=lambda message: tqdm.write(f"sceneseg: error: {message}", file=sys.stderr),
    )
    print(f"written {len(report.written)} files to {args.out}")
    if report.failures:
        raise SceneSegError(f"{len(report.failures)} input(s) failed, listed above; the others were written")


def export_command(args: argparse.Namespace) -> None:
    from .api import load_model
    from .export import export_onnx

    out = Path(args.out) if args.out else Path(args.checkpoint).with_suffix(".onnx")
    check_output_file(out, "--out")
    error = export_onnx(load_model(args.checkpoint), out)
    print(
        f"written {out}: input 'image' (N, 3, H, W), output 'logits' (N, C, H, W), N/H/W dynamic; "
        f"largest difference to PyTorch {error:.1e} of the logit range"
    )
