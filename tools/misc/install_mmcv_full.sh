#!/usr/bin/env bash
# Install the downstream extras of CI2P-MM: full mmcv 2.1.0 (with compiled ops),
# mmdet 3.3.0, mmpose 1.3.2 and mmsegmentation 1.2.2, into the Python environment
# that runs this script.
#
#   PYTHON=/path/to/venv/bin/python bash tools/misc/install_mmcv_full.sh
#
# Why a script: mmdet, mmpose and mmseg need `mmcv._ext` (compiled ops). PyPI has no mmcv
# 2.1.0 wheel for recent Python/torch, and the sdist does not build against torch
# >= 2.10 as is: its setup.py appends `-std=c++17` after any user flag, which makes
# torch's headers (C++20) fail. We build from PyPI's sdist with that one flag
# changed to `-std=c++20`, for the torch already installed (CPU ops, or CUDA ops when
# `torch.cuda.is_available()` and nvcc exists), and cache the wheel outside the
# repository so later runs (CI) reuse it. mmcv 2.1.0, not 2.2.0: mmdet 3.3.0 refuses
# >= 2.2.0 (so does mmseg 1.2.2, the release for mmcv 2.1), and mmpretrain/mmpose
# import mmdet once it is installed.
#
# Environment variables:
#   PYTHON              interpreter to install into (default: `python` on PATH)
#   CI2P_WHEEL_CACHE    wheel cache (default: $HOME/.cache/ci2p_mm/wheels); the wheel
#                       is keyed by mmcv version, torch version, python tag, platform
#                       and cpu/cuda flavour, so a wheel built for another torch is
#                       never reused.
#   CI2P_FORCE_REBUILD  1: ignore a cached wheel and build again
#   CI2P_FORCE_CPU      1: build CPU ops even when CUDA is usable
#   CI2P_SKIP_DOWNSTREAM 1: install mmcv only, not mmdet/mmpose/mmseg
#   MAX_JOBS            parallel compile jobs (default 2)
#   TORCH_CUDA_ARCH_LIST  (CUDA builds) GPU archs; default: the visible GPU's.
#
# The script never changes torch, torchvision, numpy or mmengine: every pip call runs
# under a constraints file that pins the versions found at the start.
set -Eeuo pipefail

MMCV_VERSION=2.1.0
MMDET_VERSION=3.3.0
MMPOSE_VERSION=1.3.2
MMSEG_VERSION=1.2.2
PYTHON=${PYTHON:-python}
CACHE_ROOT=${CI2P_WHEEL_CACHE:-$HOME/.cache/ci2p_mm/wheels}
MAX_JOBS=${MAX_JOBS:-2}

STEP="start"
T0=$(date +%s)
log() { printf '[install_mmcv_full %(%H:%M:%S)T] %s\n' -1 "$*"; }
step() { STEP="$*"; log "==> $STEP"; }
die() { log "FAILED at step: $STEP: $*" >&2; exit 1; }
trap 'rc=$?; log "FAILED at step: $STEP (exit code $rc, line $LINENO)" >&2; exit $rc' ERR

pip_() { "$PYTHON" -m pip --disable-pip-version-check "$@"; }

# ---------------------------------------------------------------------------------
step "checking the Python environment ($PYTHON)"
command -v "$PYTHON" >/dev/null 2>&1 || die "no interpreter '$PYTHON' (set PYTHON=...)"
"$PYTHON" -c 'import torch' 2>/dev/null \
    || die "torch is not importable from $PYTHON; install torch (and torchvision) first"

# key=value lines describing the environment
ENV_INFO=$("$PYTHON" - <<'EOF'
import os, platform, shutil, sys
import torch
py_tag = 'cp%d%d' % sys.version_info[:2]
cuda = (torch.version.cuda is not None and torch.cuda.is_available()
        and os.environ.get('CI2P_FORCE_CPU', '0') != '1')
nvcc = shutil.which('nvcc')
if not nvcc and os.environ.get('CUDA_HOME'):
    cand = os.path.join(os.environ['CUDA_HOME'], 'bin', 'nvcc')
    nvcc = cand if os.path.exists(cand) else None
if cuda and nvcc:
    archs = os.environ.get('TORCH_CUDA_ARCH_LIST')
    if not archs:
        archs = '%d.%d' % torch.cuda.get_device_capability(0)
    archs_key = archs.replace(' ', '_').replace(';', '_').replace('+', 'p')
    flavour = 'cu%s-sm%s' % (torch.version.cuda.replace('.', ''), archs_key)
else:
    archs, flavour = '', 'cpu'
from importlib import metadata


def dist_version(name):
    # the distribution's version (what pip compares constraints with); it can
    # differ from the module's __version__ (torch: '2.14.1' vs '2.14.1+cu130')
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ''


print('TORCH_VERSION=' + torch.__version__)
print('TORCH_DIST_VERSION=' + dist_version('torch'))
tv_version = dist_version('torchvision')
np_version = dist_version('numpy')
print('TORCHVISION_VERSION=' + tv_version)
print('NUMPY_VERSION=' + np_version)
print('PY_TAG=' + py_tag)
print('PLATFORM=' + platform.machine())
print('FLAVOUR=' + flavour)
print('ARCHS=' + archs)
print('CUDA_USABLE=' + ('1' if cuda else '0'))
print('NVCC=' + (nvcc or ''))
EOF
) || die "could not inspect torch"
eval "$ENV_INFO"
log "python tag $PY_TAG, torch $TORCH_VERSION, torchvision ${TORCHVISION_VERSION:-none}," \
    "numpy ${NUMPY_VERSION:-none}, platform $PLATFORM, build flavour $FLAVOUR"
if [[ $CUDA_USABLE == 1 && -z $NVCC ]]; then
    log "CUDA is usable but nvcc was not found: building CPU ops only" \
        "(set CUDA_HOME or put nvcc on PATH for CUDA ops)"
fi

# Pin what must not move. mmcv is pinned too, so that mmdet's resolver cannot
# replace the wheel we build.
CONSTRAINTS=$(mktemp -t ci2p_constraints.XXXXXX.txt)
WORK=$(mktemp -d -t ci2p_mmcv_build.XXXXXX)
cleanup() { rm -rf "$WORK" "$CONSTRAINTS"; }
trap cleanup EXIT
{
    echo "torch==$TORCH_DIST_VERSION"
    [[ -n $TORCHVISION_VERSION ]] && echo "torchvision==$TORCHVISION_VERSION"
    [[ -n $NUMPY_VERSION ]] && echo "numpy==$NUMPY_VERSION"
    echo "mmcv==$MMCV_VERSION"
    MMENGINE_VERSION=$("$PYTHON" -c 'from importlib import metadata; print(metadata.version("mmengine"))' 2>/dev/null || true)
    [[ -n $MMENGINE_VERSION ]] && echo "mmengine==$MMENGINE_VERSION"
    true
} >"$CONSTRAINTS"
log "pinned during installation: $(tr '\n' ' ' <"$CONSTRAINTS")"

CACHE_DIR="$CACHE_ROOT/mmcv-$MMCV_VERSION/torch-$TORCH_VERSION/$PY_TAG-$PLATFORM-$FLAVOUR"
log "wheel cache: $CACHE_DIR"

# ---------------------------------------------------------------------------------
step "checking for an installed full mmcv $MMCV_VERSION"
HAVE_FULL=$("$PYTHON" - "$MMCV_VERSION" <<'EOF' 2>/dev/null || echo 0
import sys
import mmcv
from mmcv.ops import nms  # noqa: F401  needs mmcv._ext
print(1 if mmcv.__version__ == sys.argv[1] else 0)
EOF
)
if [[ $HAVE_FULL == 1 && ${CI2P_FORCE_REBUILD:-0} != 1 ]]; then
    log "full mmcv $MMCV_VERSION with ops is already installed: nothing to build"
else
    WHEEL=""
    if [[ ${CI2P_FORCE_REBUILD:-0} != 1 ]]; then
        WHEEL=$(ls "$CACHE_DIR"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true)
    fi
    if [[ -n $WHEEL ]]; then
        log "reusing cached wheel $WHEEL (no build)"
    else
        # -----------------------------------------------------------------------
        step "checking build requirements (ninja, wheel, setuptools with pkg_resources)"
        MISSING=()
        "$PYTHON" -c 'import ninja' 2>/dev/null || MISSING+=(ninja)
        "$PYTHON" -c 'import wheel' 2>/dev/null || MISSING+=(wheel)
        # mmcv's setup.py imports pkg_resources (removed in setuptools 81)
        "$PYTHON" -W ignore -c 'import pkg_resources' 2>/dev/null || MISSING+=('setuptools>=69,<81')
        if ((${#MISSING[@]})); then
            log "installing build requirements: ${MISSING[*]}"
            pip_ install -c "$CONSTRAINTS" "${MISSING[@]}"
        fi
        command -v "${CXX:-c++}" >/dev/null 2>&1 || die "no C++ compiler (${CXX:-c++}); install g++"

        # -----------------------------------------------------------------------
        step "downloading the mmcv $MMCV_VERSION source distribution from PyPI"
        pip_ download --no-deps --no-binary mmcv --no-build-isolation \
            -d "$WORK/sdist" "mmcv==$MMCV_VERSION"
        SDIST="$WORK/sdist/mmcv-$MMCV_VERSION.tar.gz"
        [[ -f $SDIST ]] || die "expected $SDIST after pip download"

        step "unpacking and patching setup.py (-std=c++17 -> -std=c++20)"
        tar -xzf "$SDIST" -C "$WORK"
        SRC="$WORK/mmcv-$MMCV_VERSION"
        N=$(grep -c -- "'-std=c++17'" "$SRC/setup.py" || true)
        ((N > 0)) || die "setup.py has no '-std=c++17' to replace: not the expected mmcv sdist"
        sed -i "s/'-std=c++17'/'-std=c++20'/g" "$SRC/setup.py"
        ! grep -q -- "'-std=c++17'" "$SRC/setup.py" || die "patching setup.py failed"
        log "replaced $N occurrence(s) of '-std=c++17'"

        # -----------------------------------------------------------------------
        if [[ $FLAVOUR == cpu ]]; then
            step "building mmcv $MMCV_VERSION with CPU ops (MAX_JOBS=$MAX_JOBS; ~9 min on 2 cores)"
            # hide GPUs so mmcv's setup.py (which checks torch.cuda.is_available())
            # cannot pick CUDAExtension without nvcc
            BUILD_ENV=(CUDA_VISIBLE_DEVICES= FORCE_CUDA=0)
        else
            step "building mmcv $MMCV_VERSION with CUDA ops for $FLAVOUR (MAX_JOBS=$MAX_JOBS; long)"
            BUILD_ENV=(FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$ARCHS")
        fi
        TB=$(date +%s)
        env "${BUILD_ENV[@]}" MMCV_WITH_OPS=1 MAX_JOBS="$MAX_JOBS" CFLAGS="${CFLAGS:--g0}" \
            "$PYTHON" -m pip --disable-pip-version-check wheel --no-build-isolation \
            --no-deps -w "$WORK/wheel" "$SRC"
        BUILD_S=$(($(date +%s) - TB))
        BUILT=$(ls "$WORK"/wheel/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true)
        [[ -n $BUILT ]] || die "pip wheel produced no mmcv wheel"
        log "built $(basename "$BUILT") ($(du -h "$BUILT" | cut -f1)) in $((BUILD_S / 60)) min $((BUILD_S % 60)) s"

        step "caching the wheel in $CACHE_DIR"
        mkdir -p "$CACHE_DIR"
        # write then rename: a concurrent reader never sees half a wheel
        cp "$BUILT" "$CACHE_DIR/.$(basename "$BUILT").tmp"
        mv "$CACHE_DIR/.$(basename "$BUILT").tmp" "$CACHE_DIR/$(basename "$BUILT")"
        WHEEL="$CACHE_DIR/$(basename "$BUILT")"
    fi

    # -------------------------------------------------------------------------------
    step "removing mmcv-lite / other mmcv installs (they share the mmcv module)"
    # uninstall lite first: uninstalling one of the two deletes the other's files
    for dist in mmcv-lite mmcv; do
        if pip_ show "$dist" >/dev/null 2>&1; then
            log "uninstalling $dist"
            pip_ uninstall -y "$dist"
        fi
    done

    step "installing $(basename "$WHEEL")"
    pip_ install -c "$CONSTRAINTS" "$WHEEL"
fi

step "checking mmcv ops"
"$PYTHON" -c "
import mmcv, torch
from mmcv.ops import nms, RoIAlign
b = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.]]); s = torch.tensor([.9, .8])
nms(b, s, 0.5)
print('mmcv', mmcv.__version__, 'ops OK')
" || die "mmcv was installed but its compiled ops do not load"

# -----------------------------------------------------------------------------------
if [[ ${CI2P_SKIP_DOWNSTREAM:-0} != 1 ]]; then
    step "installing mmdet $MMDET_VERSION (with its dependencies; torch/numpy/mmcv pinned)"
    pip_ install -c "$CONSTRAINTS" "mmdet==$MMDET_VERSION"

    step "installing mmpose $MMPOSE_VERSION (--no-deps: its chumpy requirement does not build)"
    pip_ install -c "$CONSTRAINTS" --no-deps "mmpose==$MMPOSE_VERSION"
    pip_ install -c "$CONSTRAINTS" json-tricks munkres xtcocotools

    step "installing mmsegmentation $MMSEG_VERSION (+ ftfy, regex: mmseg.models imports them)"
    pip_ install -c "$CONSTRAINTS" "mmsegmentation==$MMSEG_VERSION" ftfy regex

    step "checking imports"
    "$PYTHON" -W ignore -c "
import torch, numpy, mmcv, mmengine, mmdet, mmpose, mmseg
import mmdet.models, mmpose.models, mmseg.models
print('torch', torch.__version__, '| numpy', numpy.__version__, '| mmengine', mmengine.__version__,
      '| mmcv', mmcv.__version__, '| mmdet', mmdet.__version__, '| mmpose', mmpose.__version__,
      '| mmseg', mmseg.__version__)
" || die "mmdet/mmpose/mmseg were installed but do not import"
fi

"$PYTHON" -c "import torch; assert torch.__version__ == '$TORCH_VERSION', torch.__version__" \
    || die "torch changed during installation (expected $TORCH_VERSION)"
STEP="done"
T=$(($(date +%s) - T0))
log "done in $((T / 60)) min $((T % 60)) s"
