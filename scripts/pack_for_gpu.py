"""Pack what the lent GPU machine lacks: wheels for albumentations and its needs, CamVid as JPEG frames.

    python scripts/pack_for_gpu.py --out gpu_pack/            # wheels + CamVid train/val, then checks
    python scripts/pack_for_gpu.py --out gpu_pack/ --no-data  # wheels only
    python scripts/pack_for_gpu.py --verify gpu_pack/         # there, after installing: every need met?

That machine (README, "GPU runbook") runs Python 3.12 with a CUDA torch and reaches no network; only
the working tree and up to 8 carried ignored folders, 64 MiB in all, travel to it. So this writes,
into an ignored folder:

  wheels/  the CPython 3.12 manylinux x86_64 wheels of every package albumentations needs that the
           machine's image lacks (ON_GPU_MACHINE), in the versions installed here, and checks that
           the set is complete: every requirement of every wheel, and sceneseg's own, is met by a
           wheel or by the machine's image;
  camvid/  CamVid train and val in the SegNet layout, frames re-encoded as JPEG (quality 95 by
           default: about a third of the PNGs' size) and label PNGs copied unchanged, then checked
           with `sceneseg data check`.

sceneseg itself travels as source with the working tree (gpu_check.sh puts src/ on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
TRAVEL_LIMIT = 64 * 2**20  # the device tool's limit on what travels: working tree plus carried paths
PYTHON_VERSION = "3.12"
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_27_x86_64", "manylinux_2_28_x86_64")
# The target interpreter, for evaluating the wheels' environment markers.
MARKERS = {
    "python_version": PYTHON_VERSION,
    "python_full_version": f"{PYTHON_VERSION}.3",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "extra": "",
}
# Packages of the GPU machine's image that sceneseg or albumentations use (the device tool's KINDS.md
# lists the whole image): carrying another copy would only shadow them. typing-extensions is there
# too but travels anyway: pydantic 2.14 needs >= 4.16.0, newer than that image may hold, and 45 kB
# settles it.
ON_GPU_MACHINE = {
    canonicalize_name(name)
    for name in (
        "torch", "numpy", "opencv-python-headless", "PyYAML", "tqdm", "matplotlib", "scipy",
        "onnx", "onnxruntime", "onnxscript", "tensorboard", "packaging",
    )
}  # fmt: skip


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def _target_options() -> list[str]:
    platforms = [f"--platform={p}" for p in PLATFORMS]
    return ["--only-binary=:all:", f"--python-version={PYTHON_VERSION}", "--implementation=cp", *platforms]


def local_closure(name: str) -> dict[str, str]:
    """{name: version} of `name` and everything it needs, as installed here (the tested versions)."""
    found: dict[str, str] = {}
    todo = [name]
    while todo:
        key = canonicalize_name(todo.pop())
        if key in found:
            continue
        try:
            dist = metadata.distribution(key)
        except metadata.PackageNotFoundError:
            continue
        found[key] = dist.version
        todo += [Requirement(r).name for r in dist.requires or [] if "extra ==" not in r]
    return found


def resolve(requirement: str, constraints: dict[str, str]) -> dict[str, str]:
    """{name: version} that pip resolves `requirement` to for the GPU machine's Python and platform,
    holding the versions in `constraints` where it can."""
    with tempfile.TemporaryDirectory() as tmp:
        pins = Path(tmp) / "constraints.txt"
        pins.write_text("".join(f"{n}=={v}\n" for n, v in constraints.items()))
        report = Path(tmp) / "report.json"
        args = ["install", "-q", "--dry-run", "--ignore-installed", f"--report={report}", f"--target={tmp}/t"]
        _pip(*args, *_target_options(), "-c", str(pins), requirement)
        items = json.loads(report.read_text())["install"]
    return {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in items}


def download_wheels(folder: Path, requirement: str) -> dict[str, str]:
    """Wheels of what `requirement` needs beyond ON_GPU_MACHINE into `folder` (one version each)."""
    resolved = resolve(requirement, local_closure(Requirement(requirement).name))
    wanted = {n: v for n, v in sorted(resolved.items()) if n not in ON_GPU_MACHINE}
    folder.mkdir(parents=True, exist_ok=True)
    _pip(
        "download", "-q", "--no-deps", *_target_options(), "-d", str(folder), *(f"{n}=={v}" for n, v in wanted.items())
    )
    for wheel in folder.glob("*.whl"):  # an earlier pack's other versions: two of one package stop pip
        name, version = _wheel_name_version(wheel)
        if wanted.get(name) != version:
            wheel.unlink()
    return wanted


def _wheel_name_version(wheel: Path) -> tuple[str, str]:
    name, version = wheel.name.split("-")[:2]
    return canonicalize_name(name), str(Version(version))


def _wheel_requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(meta).decode().splitlines()
    return [Requirement(line.split(":", 1)[1].strip()) for line in lines if line.startswith("Requires-Dist:")]


def _own_requirements() -> list[Requirement]:
    # sceneseg's [project] dependencies, read from pyproject.toml without a TOML parser (3.10 has none).
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, flags=re.S | re.M).group(1)
    return [Requirement(r) for r in re.findall(r'^\s*"([^"]+)"', block, flags=re.M)]


def check_closure(folder: Path, installed: dict[str, str] | None = None) -> list[str]:
    """What the wheels in `folder` and sceneseg need but neither a wheel nor the machine provides.

    `installed` ({name: version}) checks versions too, against what an interpreter really has;
    without it, packages of ON_GPU_MACHINE count as present in any version."""
    shipped = dict(_wheel_name_version(w) for w in folder.glob("*.whl"))
    needs = [(w.name, r) for w in sorted(folder.glob("*.whl")) for r in _wheel_requirements(w)]
    needs += [("sceneseg", r) for r in _own_requirements()]
    problems = []
    for who, requirement in needs:
        if requirement.marker is not None and not requirement.marker.evaluate(MARKERS):
            continue
        name = canonicalize_name(requirement.name)
        version = shipped.get(name) or (installed or {}).get(name)
        if version is None and installed is None and name in ON_GPU_MACHINE:
            continue
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{who} needs {requirement}, found {version or 'nothing'}")
    return problems


def pip_accepts(folder: Path) -> None:
    """pip itself, offline, takes every wheel as installable on CPython 3.12 manylinux x86_64."""
    with tempfile.TemporaryDirectory() as tmp:
        wheels = [str(w) for w in sorted(folder.glob("*.whl"))]
        # Requires-Python is left to the tags: pip (23.2) checks it of local files against this interpreter.
        offline = ["--dry-run", "--no-index", "--no-deps", "--ignore-requires-python", f"--target={tmp}"]
        _pip("install", "-q", *offline, *_target_options(), *wheels)


def pack_camvid(source: Path, dest: Path, quality: int, splits: tuple[str, ...] = ("train", "val")) -> int:
    """CamVid's SegNet layout from `source` into `dest` with JPEG frames; returns the frames written.

    JPEG at quality 90-95 loses little that training at short side 240 sees (the frames are
    shrunk by a third first) and is about a third of PNG's size; labels must stay exact, so they
    stay PNG, byte for byte. Readers pair frames with labels by stem, so .jpg frames just work."""
    import cv2  # only packing the data needs OpenCV

    written = 0
    for split in splits:
        frames, labels = dest / split, dest / f"{split}annot"
        for folder in (frames, labels):
            if folder.exists():  # a re-pack starts clean: no frame of an earlier pack lingers
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
        for image in sorted((source / split).glob("*.png")):
            pixels = cv2.imread(str(image), cv2.IMREAD_COLOR)
            if pixels is None:
                raise SystemExit(f"cannot read {image}")
            cv2.imwrite(str(frames / f"{image.stem}.jpg"), pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
            shutil.copy2(source / f"{split}annot" / image.name, labels / image.name)
            written += 1
    return written


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def _working_tree_size() -> int:
    """Bytes of what travels besides carried paths: tracked and untracked files git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    files = [ROOT / name for name in listed.decode().split("\0") if name]
    return sum(f.stat().st_size for f in files if f.is_file())


def report_sizes(out: Path) -> None:
    mib = 2**20
    parts = [(p.name, _size(p)) for p in sorted(out.iterdir())]
    tree = _working_tree_size()
    total = tree + sum(size for _, size in parts)
    print("\n| part | MiB |\n|---|---:|")
    for name, size in parts:
        print(f"| {out.name}/{name} | {size / mib:.1f} |")
    print(f"| working tree (travels anyway) | {tree / mib:.1f} |")
    print(f"| **total that travels** | **{total / mib:.1f}** of {TRAVEL_LIMIT / mib:.0f} |")
    if total > TRAVEL_LIMIT:
        raise SystemExit(f"the pack and the working tree exceed the {TRAVEL_LIMIT // mib} MiB that travel")


def verify_installed(pack: Path) -> int:
    """On the GPU machine, after installing the wheels: every shipped wheel is what this interpreter
    imports, and every requirement of the wheels and of sceneseg is met, version included."""
    installed: dict[str, str] = {}
    for dist in metadata.distributions():  # in sys.path order: the first one found is the one imported
        installed.setdefault(canonicalize_name(dist.metadata["Name"]), dist.version)
    problems = check_closure(pack / "wheels", installed)
    for wheel in sorted((pack / "wheels").glob("*.whl")):
        name, version = _wheel_name_version(wheel)
        if installed.get(name) != version:
            problems.append(f"{wheel.name} is not what this interpreter finds ({installed.get(name) or 'nothing'})")
    print("\n".join(problems) or f"all needs met: {len(list((pack / 'wheels').glob('*.whl')))} wheels installed")
    return 1 if problems else 0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "gpu_pack", help="pack folder (default gpu_pack/)")
    parser.add_argument("--camvid", type=Path, default=ROOT.parent / "shared" / "datasets" / "camvid")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality of the frames (default 95)")
    parser.add_argument("--requirement", default=None, help="default: albumentations==<the version here>")
    parser.add_argument("--no-wheels", action="store_true")
    parser.add_argument("--no-data", action="store_true")
    parser.add_argument("--verify", type=Path, metavar="PACK", help="check an installed pack instead (there)")
    return parser.parse_args()


def main() -> int:
    args = _parse_args()
    if args.verify:
        return verify_installed(args.verify)
    out: Path = args.out
    if not args.no_wheels:
        requirement = args.requirement or f"albumentations=={metadata.version('albumentations')}"
        wanted = download_wheels(out / "wheels", requirement)
        print(
            f"wheels for CPython {PYTHON_VERSION} manylinux x86_64: {', '.join(f'{n} {v}' for n, v in wanted.items())}"
        )
        problems = check_closure(out / "wheels")
        if problems:
            raise SystemExit("the wheel set is incomplete:\n  " + "\n  ".join(problems))
        pip_accepts(out / "wheels")
        print("complete: every requirement of these wheels and of sceneseg is a wheel here or on the GPU machine")
    if not args.no_data:
        count = pack_camvid(args.camvid, out / "camvid", args.quality)
        print(f"camvid: {count} frames as JPEG (quality {args.quality}), labels as PNG, in {out / 'camvid'}")
        # The readers' own check: every frame pairs with its label and decodes, labels hold valid indices.
        check = [sys.executable, "-m", "sceneseg", "data", "check", str(out / "camvid")]
        if subprocess.run(check).returncode != 0:
            raise SystemExit(f"sceneseg data check {out / 'camvid'} failed")
    report_sizes(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
