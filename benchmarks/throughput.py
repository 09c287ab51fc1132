"""Forward and train-step throughput (images/s) and peak memory of the segmentation models.

    python benchmarks/throughput.py                       # all models, CPU (and GPU if present)
    python benchmarks/throughput.py --models simple_r18 --iters 5 --device cpu
    python benchmarks/throughput.py --models deeplabv3plus18_fine --batch 16 --precisions bf16 \
        --layouts on --losses ce ce+lovasz ce+lovasz_binned     # what a head loss costs a step
    python benchmarks/throughput.py --models deeplabv3plus18_fine deeplabv3plus18_fine_slim \
        --batch 16 --size 201 --losses ce+lovasz_binned          # the 60-minute recipe's model, two widths

Every configuration runs in a fresh subprocess so that its peak memory (RSS on the CPU, the
allocator's peak on a GPU) is its own. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import time

# DeepLabV3+-18 with the stride-2 decoder stage (the 60-minute thin-class recipe's model).
FINE = dict(backbone="resnet18", deep_stem=False, output_stride=16, decoder_stride=2)

MODELS = {
    "simple_r18": ("simple", dict(backbone="resnet18", deep_stem=False)),
    "simple_r50": ("simple", dict(backbone="resnet50", deep_stem=True)),
    "pspnet18": ("pspnet", dict(backbone="resnet18", deep_stem=False)),
    "pspnet50": ("pspnet", dict(backbone="resnet50", deep_stem=True)),
    "deeplabv3plus18": ("deeplabv3plus", dict(backbone="resnet18", deep_stem=False, output_stride=16)),
    "deeplabv3plus18_fine": ("deeplabv3plus", FINE),
    # The same with ASPP and the stride-4 decoder at half width (128 channels each).
    "deeplabv3plus18_fine_slim": ("deeplabv3plus", dict(FINE, aspp_channels=128, decoder_channels=128)),
    "deeplabv3plus34_fine_slim": (
        "deeplabv3plus",
        dict(FINE, backbone="resnet34", aspp_channels=128, decoder_channels=128),
    ),
    # ... plus layer2's stride-8 skip into the stride-4 decoder (model.mid_skip).
    "deeplabv3plus18_fine_slim_mid": (
        "deeplabv3plus",
        dict(FINE, aspp_channels=128, decoder_channels=128, mid_skip=True),
    ),
}

# Head losses (loss section options) the train step can use; class weights are left out, as they
# cost nothing measurable (benchmarks/losses.py).
LOSSES = {
    "ce": {},
    "ce+lovasz": {"lovasz_weight": 1.0},
    "ce+lovasz_binned": {"lovasz_weight": 1.0, "lovasz_bins": 16384},
}


def measure(
    model_key: str,
    device: str,
    bf16: bool,
    channels_last: bool,
    size: int,
    batch: int,
    iters: int,
    warmup: int,
    loss: str = "ce",
) -> dict:
    import torch

    from sceneseg.config import LossConfig
    from sceneseg.losses import build_head_loss, segmentation_loss
    from sceneseg.models import MODELS as FACTORIES

    torch.manual_seed(0)
    name, options = MODELS[model_key]
    model = FACTORIES[name](num_classes=11, **options).to(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    images = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=memory_format)
    target = torch.randint(0, 11, (batch, size, size), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    head_loss = build_head_loss(LossConfig(**LOSSES[loss]))

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def forward() -> None:
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            model(images)

    def train_step() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            outputs = model(images)
        total = segmentation_loss(outputs, target, head_loss=head_loss)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    result = {}
    for label, step, train in (("forward", forward, False), ("train", train_step, True)):
        model.train(train)
        for _ in range(warmup):
            step()
        sync()
        start = time.perf_counter()
        for _ in range(iters):
            step()
        sync()
        result[f"{label}_img_s"] = iters * batch / (time.perf_counter() - start)
    if device == "cuda":
        result["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all")
    parser.add_argument("--size", type=int, default=201)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--layouts", nargs="+", default=["off", "on"], choices=["off", "on"], help="channels_last")
    parser.add_argument("--losses", nargs="+", default=["ce"], choices=list(LOSSES), help="head loss of the step")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(measure(**spec)))
        return

    import torch

    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
        + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "")
    )
    print(f"input {args.size}x{args.size}, batch {args.batch}, {args.iters} timed iterations after {args.warmup}\n")
    print("| model | device | precision | channels_last | loss | forward img/s | train img/s | peak MiB |")
    print("|---|---|---|---|---|---:|---:|---:|")
    for device, model_key, precision, layout, loss in itertools.product(
        devices, args.models, args.precisions, args.layouts, args.losses
    ):
        bf16, channels_last = precision == "bf16", layout == "on"
        spec = dict(
            model_key=model_key,
            device=device,
            bf16=bf16,
            channels_last=channels_last,
            size=args.size,
            batch=args.batch,
            iters=args.iters,
            warmup=args.warmup,
            loss=loss,
        )
        done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
        row = f"| {model_key} | {device} | {precision} | {layout} | {loss} |"
        if done.returncode != 0:
            print(f"{row} failed: {done.stderr.strip().splitlines()[-1]} | | |")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{row} {r['forward_img_s']:.1f} | {r['train_img_s']:.1f} | {r['peak_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
