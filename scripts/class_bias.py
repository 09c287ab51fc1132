"""Print the `eval.class_bias` override that undoes part of a run's class weighting at inference.

    python scripts/class_bias.py RUN_DIR --tau 0.5 [0.25 1.0 ...]

A model trained with cross-entropy weighted by w_c learns to score class c as if it were w_c times
as frequent, so it calls the weighted-up classes far more often than they occur (on CamVid's val, a
PSPNet-18 with median-frequency weights calls 13.6x as many pixels Pedestrian as there are). Adding
-tau * ln(w_c) to the log-probabilities removes that prior: tau = 1 entirely, tau = 0 not at all.
The weights are the ones the run trained with (RUN_DIR/class_weights.json, after any
loss.class_weight_mult). `--leave CLASS ...` keeps those classes' offsets at 0, for a class whose
weighting is what finds it at all (a thin class the removed prior would hand back to its wide
neighbours); a class of weight 0 (absent from the train split) keeps 0 too, since no prior was added
to it. Choose tau on a held-out split, not on the split you report: `sceneseg evaluate
RUN_DIR/best.pt --split heldout OVERRIDE`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def class_bias(weights: list[float], tau: float, leave: list[bool] | None = None) -> list[float]:
    """-tau * ln(w) per class (0 where `leave` is true), rounded to 4 decimals (the override stays short)."""
    leave = leave or [False] * len(weights)
    # + 0.0: no "-0.0" in the override
    return [0.0 if kept else round(-tau * math.log(w), 4) + 0.0 for w, kept in zip(weights, leave, strict=True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run folder trained with loss.class_weights")
    parser.add_argument("--tau", type=float, nargs="+", default=[0.5], help="how much of the prior to remove")
    parser.add_argument("--leave", nargs="+", default=[], metavar="CLASS", help="classes whose offset stays 0")
    args = parser.parse_args(argv)
    record = args.run / "class_weights.json"
    if not record.is_file():
        print(f"class_bias: {record} does not exist: was {args.run} trained with loss.class_weights?", file=sys.stderr)
        return 2
    weights = json.loads(record.read_text())["weights"]
    unknown = sorted(set(args.leave) - set(weights))
    if unknown:
        print(
            f"class_bias: --leave {' '.join(unknown)}: not a class of {record} ({', '.join(weights)})", file=sys.stderr
        )
        return 2
    # A weight of 0 (a class absent from the train split, or listed as 0) added no prior to take back.
    unweighted = [name for name, w in weights.items() if w <= 0 and name not in args.leave]
    if unweighted:
        print(f"class_bias: {', '.join(unweighted)}: weight 0 in {record}, offset left at 0", file=sys.stderr)
    leave = [name in args.leave or name in unweighted for name in weights]
    for tau in args.tau:
        values = ",".join(str(b) for b in class_bias(list(weights.values()), tau, leave))
        print(f"eval.class_bias=[{values}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
