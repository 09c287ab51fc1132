#!/usr/bin/env bash
# The device step of the GPU runbook (README, "GPU runbook"). On a machine with a CUDA GPU and no
# network, from what travelled there (the working tree, and gpu_pack/ from scripts/pack_for_gpu.py):
#   install     albumentations and its needs from gpu_pack/wheels (--no-index --no-deps) into $SITE,
#               sceneseg as source (src/ on PYTHONPATH), then checks every need is met; always runs
#   tests       python -m pytest tests/gpu
#   throughput  python benchmarks/throughput.py --device cuda
#   train       the study's row 6 (camvid_pspnet50_ppm_aux) for 50 epochs from scratch (no ImageNet
#               file travels) on gpu_pack/camvid, timed, then a Markdown summary for README
#
#   bash scripts/gpu_check.sh                    # every step
#   bash scripts/gpu_check.sh tests throughput   # some of them
#   bash scripts/gpu_check.sh --dry-run          # print the commands, run none
#
# Output is also written to $OUT when it is set (the device tool brings back up to 8 files from there:
# gpu_check.log, pytest.txt, throughput.md, train.log, history.json, metrics.json, summary.md), else to
# gpu_check_out/. Without CUDA every GPU step is skipped and says why, and on a Python other than 3.12
# the wheels are installed into a folder that Python does not use: so the script runs on a CPU machine too.
# Environment: PACK (gpu_pack), PYTHON (python3), SITE (/tmp/sceneseg_site), EPOCHS (50), DEVICE (cuda;
# cpu trains on the CPU to try the plumbing), TRAIN_TIMEOUT (540 s: the summary still prints inside a
# 10-minute device call), TRAIN_EXTRA (more overrides), RUN_DIR (/tmp/sceneseg_gpu_check/run).
set -uo pipefail
cd "$(dirname "$0")/.."

PACK=${PACK:-gpu_pack}
PYTHON=${PYTHON:-python3}
SITE=${SITE:-/tmp/sceneseg_site}
OUT=${OUT:-gpu_check_out}
EPOCHS=${EPOCHS:-50}
DEVICE=${DEVICE:-cuda}
TRAIN_TIMEOUT=${TRAIN_TIMEOUT:-540}
TRAIN_EXTRA=${TRAIN_EXTRA:-}
RUN_DIR=${RUN_DIR:-/tmp/sceneseg_gpu_check/run}
CONFIG=camvid_pspnet50_ppm_aux
PLATFORMS=(--platform=manylinux2014_x86_64 --platform=manylinux_2_17_x86_64 --platform=manylinux_2_28_x86_64)
DRY=0
STEPS=()

section() { printf '\n## %s\n\n' "$*"; }
run() {  # echo, then run unless --dry-run
    echo "+ $*" >&2
    [ "$DRY" = 1 ] || "$@"
}

install() {
    section "install from $PACK"
    local wheels=("$PACK"/wheels/*.whl)
    if [ ! -e "${wheels[0]}" ]; then
        echo "no wheels in $PACK/wheels: run 'python scripts/pack_for_gpu.py --out $PACK' where pip works, and carry $PACK"
        return 1
    fi
    local version
    version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if [ "$version" = 3.12 ]; then
        run "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$SITE" "${wheels[@]}" || return 1
        export PYTHONPATH="$PWD/src:$SITE${PYTHONPATH:+:$PYTHONPATH}"
        # The same closure check as when packing, now against the versions this interpreter imports.
        run "$PYTHON" scripts/pack_for_gpu.py --verify "$PACK" || return 1
    else
        # pip unpacks wheels of another Python into a --target folder when told which: the same install,
        # into a folder this Python never imports from.
        echo "Python $version here, the wheels are for 3.12: installing them offline into $SITE-py312, unused here"
        run "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --upgrade --ignore-requires-python \
            --target "$SITE-py312" --only-binary=:all: --python-version=3.12 --implementation=cp \
            "${PLATFORMS[@]}" "${wheels[@]}" || return 1
        [ "$DRY" = 1 ] || ls "$SITE-py312"
        export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
    fi
    run "$PYTHON" -c "import albumentations, sceneseg.data; print('albumentations', albumentations.__version__)" \
        || return 1
    if [ -d "$PACK/camvid" ]; then
        run "$PYTHON" -m sceneseg data check "$PACK/camvid" --split val >/dev/null || return 1
        echo "$PACK/camvid val: data check passed"
    else
        echo "no $PACK/camvid: the train step has no data (pack it with scripts/pack_for_gpu.py)"
    fi
}

machine() {
    section "machine"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi
    else
        echo "no nvidia-smi on this machine"
    fi
    "$PYTHON" - <<'EOF'
import os, platform, torch
gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none (torch.cuda.is_available() is False)"
print(f"Python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version()}, GPU: {gpu}, {os.cpu_count()} CPU cores")
EOF
    HAS_CUDA=$("$PYTHON" -c 'import torch; print(int(torch.cuda.is_available()))')
}

tests() {
    section "GPU tests"
    [ "$HAS_CUDA" = 1 ] || echo "no CUDA GPU here: pytest lists every GPU test as skipped, with the reason"
    run "$PYTHON" -m pytest tests/gpu -q -p no:cacheprovider 2>&1 | tee "$OUT/pytest.txt"
    return "${PIPESTATUS[0]}"
}

throughput() {
    section "model throughput on CUDA"
    if [ "$HAS_CUDA" != 1 ]; then
        echo "skipped: no CUDA GPU (torch.cuda.is_available() is False)"
        return 0
    fi
    run "$PYTHON" benchmarks/throughput.py --device cuda 2>&1 | tee "$OUT/throughput.md"
    return "${PIPESTATUS[0]}"
}

train() {
    section "study row 6: $CONFIG, $EPOCHS epochs from scratch, device $DEVICE"
    if [ "$DEVICE" = cuda ] && [ "$HAS_CUDA" != 1 ]; then
        echo "skipped: no CUDA GPU (torch.cuda.is_available() is False); DEVICE=cpu trains on the CPU instead"
        return 0
    fi
    # shellcheck disable=SC2206  # TRAIN_EXTRA is a list of overrides, split on spaces on purpose
    # Workers on all but two cores (the training process and the GPU's feeding), and the per-epoch
    # val crops, kept on the GPU, scored 64 at a time: speed only, the results do not depend on either.
    local workers=$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))
    local args=(train "$CONFIG" "data.root=$PACK/camvid" model.pretrained=null "train.epochs=$EPOCHS"
        "device=$DEVICE" "train.out_dir=$RUN_DIR" "data.num_workers=$workers" eval.batch_size=64
        $TRAIN_EXTRA --no-progress)
    local timer=()
    [ -x /usr/bin/time ] && timer=(/usr/bin/time -v)  # peak memory and CPU time too, where installed
    [ "$DRY" = 1 ] || rm -rf "$RUN_DIR"
    local start end status
    start=$(date +%s.%N)
    # timeout sends SIGTERM: sceneseg then saves last.pt and the history of the epochs it finished.
    run timeout "$TRAIN_TIMEOUT" "${timer[@]}" "$PYTHON" -m sceneseg "${args[@]}" 2>&1 | tee "$OUT/train.log"
    status=${PIPESTATUS[0]}
    end=$(date +%s.%N)
    [ "$DRY" = 1 ] && return 0
    cp "$RUN_DIR"/history.json "$RUN_DIR"/metrics.json "$OUT"/ 2>/dev/null
    section "summary for README"
    "$PYTHON" scripts/gpu_summary.py "$RUN_DIR" --wall "$(awk "BEGIN { print $end - $start }")" --exit "$status" \
        --pytest "$OUT/pytest.txt" --label "$CONFIG, no ImageNet weights, $EPOCHS epochs" | tee "$OUT/summary.md"
    return "$status"
}

main() {
    local failed=()
    machine
    install || { echo "install failed: nothing else can run"; return 1; }
    for step in "${STEPS[@]}"; do
        "$step" || failed+=("$step")
    done
    section "done"
    if [ ${#failed[@]} -gt 0 ]; then
        echo "failed: ${failed[*]}"
        return 1
    fi
    echo "all steps passed or were skipped (see above); files in $OUT"
}

for arg in "$@"; do
    case $arg in
    --dry-run) DRY=1 ;;
    tests | throughput | train) STEPS+=("$arg") ;;
    *)
        echo "usage: bash scripts/gpu_check.sh [--dry-run] [tests] [throughput] [train]" >&2
        exit 2
        ;;
    esac
done
[ ${#STEPS[@]} -gt 0 ] || STEPS=(tests throughput train)
mkdir -p "$OUT" || exit 1
main 2>&1 | tee -a "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
