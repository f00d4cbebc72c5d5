#!/usr/bin/env bash
# Issue 22's GPU figures in one budgeted script: end-to-end training (data
# loading included) of ViT-B/16 and CI2P-ViT-B from images and from latents
# with the best settings first, then what each lever buys (batch size,
# torch.compile modes, fused/foreach Adam, channels_last, SDPA kernels),
# then the profiles.
#
#   bash tools/misc/gpu_benchmark.sh [OUT_DIR]      # default work_dirs/benchmark/gpu
#
# A lease is 15 minutes of device time, 10 per command, start-up included.
# Run it as two commands:
#   GPU_BENCH_PARTS=essentials GPU_BENCH_BUDGET=470 bash tools/misc/gpu_benchmark.sh OUT
#   GPU_BENCH_PARTS=sweep,profile GPU_BENCH_BUDGET=300 bash tools/misc/gpu_benchmark.sh OUT
# (the second reuses the first's JPEGs and latent store when both run on
# the same machine; torch.compile's cache too).
#
# Parts, in order; each has a time limit, a part that no longer fits in
# GPU_BENCH_BUDGET seconds is skipped and named, a part that fails is
# reported and the next one runs; every part writes its JSON (table
# included) to OUT_DIR, end-to-end parts after every row.
#   essentials (~7 min on an H200, estimated from the 2026-11-30 log)
#     e2e_best_eager      end to end, bf16, batch GPU_BENCH_BATCH (512),
#                         fused Adam: ViT-B/16, CI2P from images, CI2P from
#                         latents (DataLoader and device-resident); peak
#                         memory per row
#     e2e_best_compiled   the same compiled (torch.compile default mode):
#                         ViT-B/16, CI2P from device-resident latents, CI2P
#                         from images
#     e2e_latent_vs_image eager, batch 128 (the 2026-11-30 setting), CI2P
#                         from images vs from latents (DataLoader, device),
#                         3 rounds round-robin: is the latent step slower?
#   sweep and profile (groups "sweep" and "profile"), in this order:
#     step_batch_sweep    train steps, eager, batch 128 256 512 1024
#                         (GPU_BENCH_SWEEP), in-process peak memory, and the
#                         SDPA kernel of every model
#     step_compile_default  train steps at GPU_BENCH_BATCH, compiled
#     profile_step_512    torch.profiler summaries of the train steps
#     step_levers_*       fused Adam, foreach Adam, channels_last, each alone
#     step_compile_reduce-overhead  CUDA graphs
#     profile_e2e         end to end at GPU_BENCH_BATCH (data wait, GPU
#                         busy/idle, launch time), DataLoader and device
#     profile_step_128
#     step_compile_max-autotune-no-cudagraphs
#   extra
#     hybrids_bf16, e2e_500x375 (the 2026-11-30 comparisons)
# Last, tools/analysis_tools/lever_table.py tabulates the JSONs
# (OUT_DIR/levers.md).
#
# Settings (environment): PYTHON (python), GPU_BENCH_PARTS (all),
#   GPU_BENCH_BUDGET (seconds, 900), GPU_BENCH_DEVICE (cuda), GPU_BENCH_AMP
#   (bf16; empty for fp32), GPU_BENCH_BATCH (512), GPU_BENCH_BASE_BATCH (128),
#   GPU_BENCH_SWEEP ("128 256 512 1024"), GPU_BENCH_STEPS (12 timed
#   end-to-end iterations), GPU_BENCH_WARMUP (3), GPU_BENCH_REPEATS /
#   GPU_BENCH_ITERS (model-step repeats and steps per repeat, 3 / 3),
#   GPU_BENCH_WORKERS (loader workers: cores - 4), GPU_BENCH_DATA
#   (/tmp/ci2p_gpu_bench), GPU_BENCH_COMPILE_BACKEND (inductor),
#   GPU_BENCH_MEMORY (in-process), GPU_BENCH_EXTRA (more benchmark.py
#   options), GPU_BENCH_VIT / _CI2P / _CI2P_LAT (configs),
#   GPU_BENCH_WHEELS (a folder of Python 3.12 wheels installed into
#   /tmp/site first, for a GPU machine without this project's packages:
#   docs/benchmark.md#gpu lists them and the pip download command).
#   GPU_BENCH_DRY_RUN=1: every part on the CPU with tiny sizes, fp32, the
#   eager compile backend (tests/test_gpu_script.py runs the essentials so).
#   GPU_BENCH_PLAN=1: print each part's command line instead of running it.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT_DIR=${1:-work_dirs/benchmark/gpu}
PYTHON=${PYTHON:-python}
if [[ ${GPU_BENCH_DRY_RUN:-0} == 1 ]]; then
    : "${GPU_BENCH_DEVICE:=cpu}" "${GPU_BENCH_AMP=}" "${GPU_BENCH_BATCH:=4}"
    : "${GPU_BENCH_BASE_BATCH:=2}" "${GPU_BENCH_SWEEP:=2 4}"
    : "${GPU_BENCH_STEPS:=2}" "${GPU_BENCH_WARMUP:=1}"
    : "${GPU_BENCH_REPEATS:=1}" "${GPU_BENCH_ITERS:=1}"
    : "${GPU_BENCH_WORKERS:=1}" "${GPU_BENCH_COMPILE_BACKEND:=eager}"
    : "${GPU_BENCH_MEMORY:=none}" "${GPU_BENCH_NUM_IMAGES:=40}"
    : "${GPU_BENCH_SOURCE_SIZE:=80x60}" "${GPU_BENCH_PROFILE_STEPS:=1}"
    : "${GPU_BENCH_EXTRA:=--img-size 64}"
fi
PARTS=${GPU_BENCH_PARTS:-essentials,sweep,profile,extra}
BUDGET=${GPU_BENCH_BUDGET:-900}
DEVICE=${GPU_BENCH_DEVICE:-cuda}
AMP=${GPU_BENCH_AMP-bf16}
BATCH=${GPU_BENCH_BATCH:-512}
BASE_BATCH=${GPU_BENCH_BASE_BATCH:-128}
read -r -a SWEEP <<<"${GPU_BENCH_SWEEP:-128 256 512 1024}"
STEPS=${GPU_BENCH_STEPS:-12}
WARMUP=${GPU_BENCH_WARMUP:-3}
REPEATS=${GPU_BENCH_REPEATS:-3}
ITERS=${GPU_BENCH_ITERS:-3}
DATA=${GPU_BENCH_DATA:-/tmp/ci2p_gpu_bench}
BACKEND=${GPU_BENCH_COMPILE_BACKEND:-inductor}
MEMORY=${GPU_BENCH_MEMORY:-in-process}
SOURCE_SIZE=${GPU_BENCH_SOURCE_SIZE:-300x225}
PROFILE_STEPS=${GPU_BENCH_PROFILE_STEPS:-3}
read -r -a EXTRA <<<"${GPU_BENCH_EXTRA:-}"
VIT=${GPU_BENCH_VIT:-configs/vit_b16_animals10.py}
CI2P=${GPU_BENCH_CI2P:-configs/ci2p_vit_animals10.py}
CI2P_LAT=${GPU_BENCH_CI2P_LAT:-configs/ci2p_vit_animals10_latents.py}
CI2P_DS=${GPU_BENCH_CI2P_DS:-configs/ci2p_vit_ds_animals10.py}
CORES=$(nproc)
WORKERS=${GPU_BENCH_WORKERS:-$((CORES > 6 ? CORES - 4 : 2))}
# JPEGs (80% for training) for one epoch of warm-up + timed iterations at
# GPU_BENCH_BATCH: no epoch restarts inside the timing; latents are encoded
# once and kept for the later parts.
NUM_IMAGES=${GPU_BENCH_NUM_IMAGES:-$((BATCH * (STEPS + WARMUP) * 5 / 4))}
START=$(date +%s)
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1
if [[ -n ${GPU_BENCH_WHEELS:-} ]]; then
    # Wheels, and sdists built here without network (compressai 1.2.8 has
    # no cp312 wheel on PyPI; its build needs setuptools, wheel, pybind11).
    shopt -s nullglob
    packages=("$GPU_BENCH_WHEELS"/*.whl "$GPU_BENCH_WHEELS"/*.tar.gz)
    shopt -u nullglob
    "$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation \
        --no-compile --no-cache-dir --upgrade --target /tmp/site "${packages[@]}" \
        || { echo "installing the packages of $GPU_BENCH_WHEELS failed"; exit 1; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

elapsed() { echo $(($(date +%s) - START)); }
say() { echo "[gpu_benchmark $(elapsed)s] $*"; }
wanted() { [[ ",$PARTS," == *",$1,"* || ",$PARTS," == *",all,"* ]]; }

# part NAME LIMIT_S MIN_S CMD...: run CMD under min(LIMIT_S, time left);
# skip it when less than MIN_S is left.
part() {
    local name=$1 limit=$2 min=$3
    shift 3
    local left=$((BUDGET - $(elapsed)))
    if ((left < min)); then
        say "SKIPPED $name: ${left}s of the ${BUDGET}s budget left, it needs ~${min}s"
        return
    fi
    ((limit > left)) && limit=$left
    if [[ ${GPU_BENCH_PLAN:-0} == 1 ]]; then
        echo "PLAN $name $limit $min $(printf '%q ' "$@")"
        return
    fi
    say "==> $name (limit ${limit}s)"
    local t0 rc
    t0=$(date +%s)
    timeout --kill-after=10 "$limit" "$@"
    rc=$?
    say "<== $name: exit $rc after $(($(date +%s) - t0))s$( ((rc == 124)) && echo ' (time limit)')"
}

BENCH=(tools/analysis_tools/benchmark.py)
COMMON=(--no-pretrained --device "$DEVICE" --compile-backend "$BACKEND" "${EXTRA[@]}")
[[ -n $AMP ]] && COMMON+=(--amp "$AMP")
STEP=(--mode train --repeats "$REPEATS" --iters "$ITERS" --warmup "$WARMUP" --memory "$MEMORY")
E2E=(--end-to-end --num-workers "$WORKERS" --steps "$STEPS" --warmup "$WARMUP"
     --num-images "$NUM_IMAGES" --source-size "$SOURCE_SIZE"
     --data-dir "$DATA/jpeg_$SOURCE_SIZE" --keep-store)
STEP_MODELS=("$VIT" "$CI2P" "$CI2P_LAT")

say "$CORES CPU cores, loader workers $WORKERS, batch $BATCH (base $BASE_BATCH), parts $PARTS, budget ${BUDGET}s"
if [[ ${GPU_BENCH_PLAN:-0} != 1 ]]; then
    if [[ $DEVICE == cuda ]]; then
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | head -3
    fi
    "$PYTHON" -c "import torch, sys; print('python', sys.version.split()[0], '| torch', torch.__version__, \
'| cuda', torch.version.cuda, '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"
fi

if wanted essentials; then
    part e2e_best_eager 150 45 "$PYTHON" "${BENCH[@]}" "$VIT" "$CI2P" "$CI2P_LAT" \
        "${COMMON[@]}" "${E2E[@]}" --batch-size "$BATCH" --optimizer-impl fused \
        --device-latents both --out "$OUT_DIR/e2e_best_eager.json"
    # most important row first: a time limit keeps the rows done
    part e2e_best_compiled 270 90 "$PYTHON" "${BENCH[@]}" "$VIT" "$CI2P_LAT" "$CI2P" \
        "${COMMON[@]}" "${E2E[@]}" --batch-size "$BATCH" --optimizer-impl fused \
        --device-latents on --compile --out "$OUT_DIR/e2e_best_compiled.json"
    part e2e_latent_vs_image 100 40 "$PYTHON" "${BENCH[@]}" "$CI2P" "$CI2P_LAT" \
        "${COMMON[@]}" "${E2E[@]}" --batch-size "$BASE_BATCH" --rounds 3 \
        --device-latents both --out "$OUT_DIR/e2e_latent_vs_image.json"
fi

# The sweep and the profiles, most telling first (a second command of a
# lease rarely fits them all): batch sizes, compiled, profile, the rest.
profile_step() {  # BATCH
    part "profile_step_$1" 60 20 "$PYTHON" "${BENCH[@]}" "${STEP_MODELS[@]}" \
        "${COMMON[@]}" "${STEP[@]}" --memory none --repeats 1 --batch-size "$1" \
        --profile --profile-steps "$PROFILE_STEPS" --out "$OUT_DIR/profile_step_$1.json"
}
step_compile() {  # MODE LIMIT
    part "step_compile_$1" "$2" 60 "$PYTHON" "${BENCH[@]}" "$VIT" "$CI2P_LAT" \
        "${COMMON[@]}" "${STEP[@]}" --batch-size "$BATCH" --compile \
        --compile-mode "$1" --out "$OUT_DIR/step_compile_$1.json"
}
if wanted sweep; then
    part step_batch_sweep 120 40 "$PYTHON" "${BENCH[@]}" "${STEP_MODELS[@]}" \
        "${COMMON[@]}" "${STEP[@]}" --batch-sizes "${SWEEP[@]}" --report-sdpa \
        --out "$OUT_DIR/step_batch_sweep.json"
    step_compile default 200
fi
wanted profile && profile_step "$BATCH"
if wanted sweep; then
    for impl in fused foreach; do
        part "step_levers_$impl" 40 15 "$PYTHON" "${BENCH[@]}" "$VIT" "$CI2P" "$CI2P_LAT" \
            "${COMMON[@]}" "${STEP[@]}" --batch-size "$BATCH" --optimizer-impl "$impl" \
            --out "$OUT_DIR/step_levers_$impl.json"
    done
    part step_levers_channels_last 40 15 "$PYTHON" "${BENCH[@]}" "$VIT" "$CI2P" "$CI2P_LAT" \
        "${COMMON[@]}" "${STEP[@]}" --batch-size "$BATCH" --channels-last \
        --out "$OUT_DIR/step_levers_channels_last.json"
    step_compile reduce-overhead 150
fi
if wanted profile; then
    part profile_e2e 90 30 "$PYTHON" "${BENCH[@]}" "$VIT" "$CI2P" "$CI2P_LAT" \
        "${COMMON[@]}" "${E2E[@]}" --batch-size "$BATCH" --optimizer-impl fused \
        --device-latents both --steps 2 --profile --profile-steps "$PROFILE_STEPS" \
        --out "$OUT_DIR/profile_e2e.json"
    profile_step "$BASE_BATCH"
fi
wanted sweep && step_compile max-autotune-no-cudagraphs 240

if wanted extra; then
    part hybrids_bf16 150 45 "$PYTHON" "${BENCH[@]}" "$VIT" "$CI2P" "$CI2P_DS" \
        configs/cvt/cvt-13_1xb128-adam-300e_animals10.py \
        configs/crossvit/crossvit-s_1xb128-adam-300e_animals10.py \
        configs/mobile_former/mobile-former-508m_1xb128-adam-300e_animals10.py \
        "${COMMON[@]}" --repeats "$REPEATS" --iters "$ITERS" --batch-size "$BASE_BATCH" \
        --memory none --out "$OUT_DIR/hybrids_bf16.json"
    part e2e_500x375 150 45 "$PYTHON" "${BENCH[@]}" "$VIT" "$CI2P" "$CI2P_LAT" \
        "${COMMON[@]}" "${E2E[@]}" --batch-size "$BATCH" --optimizer-impl fused \
        --device-latents on --source-size 500x375 --data-dir "$DATA/jpeg_500x375" \
        --out "$OUT_DIR/e2e_500x375.json"
fi

shopt -s nullglob
reports=()
for name in step_batch_sweep step_levers_fused step_levers_foreach \
    step_levers_channels_last step_compile_default step_compile_reduce-overhead \
    step_compile_max-autotune-no-cudagraphs; do
    [[ -f $OUT_DIR/$name.json ]] && reports+=("$OUT_DIR/$name.json")
done
if ((${#reports[@]})) && [[ ${GPU_BENCH_PLAN:-0} != 1 ]]; then
    "$PYTHON" tools/analysis_tools/lever_table.py "${reports[@]}" --out "$OUT_DIR/levers.md"
fi
say "done; results in $OUT_DIR"
