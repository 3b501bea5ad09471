#!/usr/bin/env bash
# Issue 18's GPU figures in three prepared device runs of <= 10 minutes each. A session is lent 15 minutes in all,
# about two of them: A first, then B or C; the rest in a later session.
#
# Prepare here, once per session (both folders are git-ignored and travel with `carry`):
#   git clone https://github.com/NVlabs/stylegan2-ada-pytorch .official/stylegan2-ada-pytorch   # or extract it
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl hydra-core==1.3.2 omegaconf==2.3.0 torch-fidelity==0.3.0
#   .venv/bin/pip wheel --no-deps -w .whl antlr4-python3-runtime==4.9.3      # hydra's parser: an sdist on PyPI
# Then on the device (the `run` tool): carry [".whl", ".official"], command `bash benchmarks/gpu_check.sh A`, and
# at once (warm machine) `bash benchmarks/gpu_check.sh B` (or C). Logs and JSON land in $OUT.
#   A: train_throughput paper256 and cifar (fp32, bf16) beside the official loop (its fp16 in 4 blocks); the top
#      ops of paper256 (torch.profiler, in tp_paper256.txt)
#   B: the 3x3 grid at 256 (bf16), channels_last against NCHW, FID50k with cached real statistics, cost growth
#   C: model.compile off / regularizers only / all phases (default mode) / all, max-autotune-no-cudagraphs on
#      paper256, bf16, interleaved in one process (compilation happens in the untimed first cycles; the official
#      loop's figure for the same case is stage A's)
set -u
stage=${1:?stage A, B or C}
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1
official=.official/stylegan2-ada-pytorch
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$out/log-$stage.txt"
git log -1 --format='commit %h %cd' 2>/dev/null | tee -a "$out/log-$stage.txt"

# step SECONDS NAME ARGS...: one benchmark under a time limit; its whole output in the log, its table on stdout
step() {
    local limit=$1 name=$2
    shift 2
    echo "== $name ($(date +%H:%M:%S), limit ${limit}s)" | tee -a "$out/log-$stage.txt"
    timeout "$limit" python3 "$@" > "$out/$name.txt" 2>&1
    echo "exit $?" >> "$out/$name.txt"
    cat "$out/$name.txt" >> "$out/log-$stage.txt"
    grep -E '^\||exit|Error|error' "$out/$name.txt" | tail -25
}

case $stage in
A)
    step 270 tp_paper256 benchmarks/train_throughput.py --case paper256 --device cuda --cycles 2 \
        --precision 32-true bf16-mixed --official "$official" --profile --json "$out/tp_paper256.json"
    step 240 tp_cifar benchmarks/train_throughput.py --case cifar --device cuda --cycles 2 \
        --precision 32-true bf16-mixed --official "$official" --json "$out/tp_cifar.json"
    ;;
B)
    step 210 tp_grid benchmarks/train_throughput.py --case grid --device cuda --cycles 1 --precision bf16-mixed \
        --json "$out/tp_grid.json"
    step 90 tp_nchw benchmarks/train_throughput.py --case paper256 --device cuda --cycles 2 --precision bf16-mixed \
        --memory-format contiguous --json "$out/tp_nchw.json"
    step 150 fid50k benchmarks/fid_speed.py --device cuda --batch 256 --repeats 1 --json "$out/fid50k.json"
    step 90 cost_growth benchmarks/cost_growth.py --device cuda --res 256 512 1024 --batch 4 16 32 \
        --json "$out/cost_growth.json"
    ;;
C)
    step 420 tp_compile benchmarks/train_throughput.py --case paper256 --device cuda --cycles 2 \
        --precision bf16-mixed --compile off '{phases:[reg]}' on max-autotune-no-cudagraphs \
        --json "$out/tp_compile.json"
    ;;
*)
    echo "stage must be A, B or C" >&2
    exit 2
    ;;
esac
