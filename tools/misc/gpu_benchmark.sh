#!/usr/bin/env bash
# The README's GPU tables in one command: model-step throughput and memory
# (bf16, batch 128), the hybrids comparison, and end-to-end training with data
# loading (JPEGs sized like Animals-10's and like ImageNet's, CI2P from images
# and from latents), eager and torch.compile'd.
#
#   bash tools/misc/gpu_benchmark.sh [OUT_DIR]      # default work_dirs/benchmark/gpu
#
# Parts run in order of importance; each has a time limit, and a part that no
# longer fits in GPU_BENCH_BUDGET seconds (default 3600) is skipped and named,
# so a time-boxed GPU lease still returns the most important tables. Every
# part writes its JSON (with the printed table) to OUT_DIR; a part that fails
# is reported and the next one runs.
#   PYTHON (default python), GPU_BENCH_BUDGET, GPU_BENCH_WORKERS (dataloader
#   workers for end-to-end; default: CPU cores - 4, at least 2),
#   GPU_BENCH_BATCH (default 128), GPU_BENCH_STEPS (end-to-end timed
#   iterations, default 20), GPU_BENCH_DATA (default /tmp/ci2p_gpu_bench),
#   GPU_BENCH_REPEATS / GPU_BENCH_ITERS (model-step repeats and steps per
#   repeat, default 5 / 5), GPU_BENCH_DEVICE (default cuda; cpu for a dry run
#   of this script), GPU_BENCH_EXTRA (more benchmark.py options, e.g.
#   "--img-size 64" for a quick dry run)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT_DIR=${1:-work_dirs/benchmark/gpu}
PYTHON=${PYTHON:-python}
BUDGET=${GPU_BENCH_BUDGET:-3600}
BATCH=${GPU_BENCH_BATCH:-128}
STEPS=${GPU_BENCH_STEPS:-20}
DATA=${GPU_BENCH_DATA:-/tmp/ci2p_gpu_bench}
REPEATS=${GPU_BENCH_REPEATS:-5}
ITERS=${GPU_BENCH_ITERS:-5}
DEVICE=${GPU_BENCH_DEVICE:-cuda}
read -r -a EXTRA <<<"${GPU_BENCH_EXTRA:-}"
CORES=$(nproc)
WORKERS=${GPU_BENCH_WORKERS:-$((CORES > 6 ? CORES - 4 : 2))}
START=$(date +%s)
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1

elapsed() { echo $(($(date +%s) - START)); }
say() { echo "[gpu_benchmark $(elapsed)s] $*"; }

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
    say "==> $name (limit ${limit}s)"
    local t0 rc
    t0=$(date +%s)
    timeout --kill-after=10 "$limit" "$@"
    rc=$?
    say "<== $name: exit $rc after $(($(date +%s) - t0))s$( ((rc == 124)) && echo ' (time limit)')"
}

VIT=configs/vit_b16_animals10.py
CI2P=configs/ci2p_vit_animals10.py
CI2P_DS=configs/ci2p_vit_ds_animals10.py
CI2P_LAT=configs/ci2p_vit_animals10_latents.py
HYBRIDS="configs/cvt/cvt-13_1xb128-adam-300e_animals10.py
configs/cvt/cvt-21_1xb128-adam-300e_animals10.py
configs/crossvit/crossvit-s_1xb128-adam-300e_animals10.py
configs/crossvit/crossvit-b_1xb128-adam-300e_animals10.py
configs/mobile_former/mobile-former-508m_1xb128-adam-300e_animals10.py"
BENCH=(tools/analysis_tools/benchmark.py)
COMMON=(--no-pretrained --device "$DEVICE" --amp bf16 --batch-size "$BATCH" "${EXTRA[@]}")
STEP=(--repeats "$REPEATS" --iters "$ITERS")
# enough JPEGs that warm-up and timed iterations fit in one epoch (80% train)
NUM_IMAGES=$(((STEPS + 5) * BATCH * 5 / 4))
((NUM_IMAGES < 200)) && NUM_IMAGES=200
E2E=(--end-to-end --num-workers "$WORKERS" --steps "$STEPS" --warmup 3
     --num-images "$NUM_IMAGES")

say "$CORES CPU cores, dataloader workers $WORKERS, batch $BATCH, budget ${BUDGET}s"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | head -3
"$PYTHON" -c "import torch, sys; print('python', sys.version.split()[0], '| torch', torch.__version__, \
'| cuda', torch.version.cuda, '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'NO CUDA')"

# 1. model steps, eager, with peak memory (one fresh process per model and mode)
part step_bf16 240 60 "$PYTHON" "${BENCH[@]}" $VIT $CI2P $CI2P_DS --timm-baseline \
    "${COMMON[@]}" "${STEP[@]}" --out "$OUT_DIR/step_bf16.json"

# 2. end to end, Animals-10-sized JPEGs: ViT-B/16 and CI2P from images, CI2P from latents
part e2e_300x225_bf16 200 60 "$PYTHON" "${BENCH[@]}" $VIT $CI2P $CI2P_LAT "${COMMON[@]}" \
    "${E2E[@]}" --source-size 300x225 --data-dir "$DATA/jpeg_300x225" \
    --out "$OUT_DIR/e2e_300x225_bf16.json"

# 3. end to end, CI2P from latents, compiled (the store from part 2 is re-encoded)
part e2e_300x225_bf16_compile 200 90 "$PYTHON" "${BENCH[@]}" $CI2P_LAT "${COMMON[@]}" \
    "${E2E[@]}" --compile --source-size 300x225 --data-dir "$DATA/jpeg_300x225" \
    --out "$OUT_DIR/e2e_300x225_bf16_compile.json"

# 4. the hybrids comparison (no memory probes: one process)
# shellcheck disable=SC2086
part hybrids_bf16 150 45 "$PYTHON" "${BENCH[@]}" $VIT $CI2P $CI2P_DS $HYBRIDS \
    "${COMMON[@]}" "${STEP[@]}" --no-memory --out "$OUT_DIR/hybrids_bf16.json"

# 5. end to end, ImageNet-sized JPEGs
part e2e_500x375_bf16 200 60 "$PYTHON" "${BENCH[@]}" $VIT $CI2P $CI2P_LAT "${COMMON[@]}" \
    "${E2E[@]}" --source-size 500x375 --data-dir "$DATA/jpeg_500x375" \
    --out "$OUT_DIR/e2e_500x375_bf16.json"

# 6. model steps, compiled (compilation in the warm-up; no memory probes)
part step_bf16_compile 600 120 "$PYTHON" "${BENCH[@]}" $VIT $CI2P $CI2P_DS \
    "${COMMON[@]}" --compile "${STEP[@]}" --no-memory \
    --out "$OUT_DIR/step_bf16_compile.json"

say "done; results in $OUT_DIR"
