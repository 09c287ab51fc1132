"""Time of each head loss, forward and backward, on one training batch of logits (ms per call).

    python benchmarks/losses.py [--batch 16] [--crop 201] [--classes 11] [--repeats 5] [--threads N]

A loss's cost is paid twice a step by models with an aux head. The logits are random, the labels
drawn with CamVid-like class shares and 3 % unlabelled pixels. Prints a Markdown table with the
median of `repeats` calls and the CPU it ran on; compare rows only within one run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sceneseg.config import LossConfig
from sceneseg.evaluation import describe_hardware
from sceneseg.labels import IGNORE_INDEX
from sceneseg.losses import build_head_loss

# Class shares of CamVid's train labels, rounded (Building, Tree, Sky, Car, SignSymbol, Road, ...).
SHARES = (0.22, 0.15, 0.15, 0.04, 0.01, 0.29, 0.01, 0.03, 0.01, 0.08, 0.01)
LOSSES = {
    "cross-entropy": LossConfig(),
    "cross-entropy, ENet weights": LossConfig(class_weights="enet"),
    "OHEM": LossConfig(name="ohem"),
    "Lovász-softmax": LossConfig(name="lovasz"),
    "Lovász-softmax, 16384 bins": LossConfig(name="lovasz", lovasz_bins=16384),
    "cross-entropy + Lovász": LossConfig(lovasz_weight=1.0),
    "cross-entropy + Lovász, 16384 bins": LossConfig(lovasz_weight=1.0, lovasz_bins=16384),
    "cross-entropy + Lovász, 4096 bins": LossConfig(lovasz_weight=1.0, lovasz_bins=4096),
}


def _batch(batch: int, crop: int, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    shares = torch.tensor(SHARES[:classes] if classes <= len(SHARES) else [1.0] * classes)
    target = torch.multinomial(shares, batch * crop * crop, replacement=True, generator=generator)
    target = target.view(batch, crop, crop)
    target[torch.rand(target.shape, generator=generator) < 0.03] = IGNORE_INDEX
    return torch.randn(batch, classes, crop, crop, generator=generator), target


def time_loss(config: LossConfig, logits: torch.Tensor, target: torch.Tensor, repeats: int) -> float:
    """Median milliseconds of one forward and backward pass of `config`'s head loss."""
    weight = torch.rand(logits.shape[1]) + 0.5 if config.class_weights else None
    loss = build_head_loss(config, weight, epoch=config.lovasz_from_epoch)
    times = []
    for _ in range(repeats + 1):  # the first call warms up
        leaf = logits.clone().requires_grad_()
        start = time.perf_counter()
        loss(leaf, target).backward()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crop", type=int, default=201)
    parser.add_argument("--classes", type=int, default=11)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logits, target = _batch(args.batch, args.crop, args.classes)
    print(f"{describe_hardware(torch.device('cpu'))}, batch {args.batch} x {args.classes} x {args.crop}^2\n")
    print("| loss | ms per forward + backward |")
    print("|---|---:|")
    for name, config in LOSSES.items():
        print(f"| {name} | {time_loss(config, logits, target, args.repeats):.0f} |")


if __name__ == "__main__":
    main()
