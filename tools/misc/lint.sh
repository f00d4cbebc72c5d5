#!/usr/bin/env bash
# The project's lint, in check mode (CI runs it; fixes: see below):
#   flake8, isort --check, yapf --diff on every Python file; YAML parses;
#   no trailing whitespace, every text file ends with one newline.
#   PYTHON=.venv/bin/python bash tools/misc/lint.sh
# Needs the `lint` extra (pip install -e ".[lint]"). To fix instead:
#   isort ci2p_mm tools tests configs demo setup.py
#   yapf -i -r ci2p_mm tools tests configs demo setup.py
# or `pre-commit run --all-files` (.pre-commit-config.yaml: the same tools).
set -uo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
TARGETS=(ci2p_mm tools tests configs demo setup.py)
status=0
step() { echo "[lint] $1"; shift; "$@" || { echo "[lint] FAILED: $*"; status=1; }; }

step flake8 "$PYTHON" -m flake8 "${TARGETS[@]}"
step isort "$PYTHON" -m isort --check-only --diff "${TARGETS[@]}"
step yapf "$PYTHON" -m yapf --diff --recursive "${TARGETS[@]}"
step "yaml parses" "$PYTHON" - <<'PY'
import subprocess, sys
import yaml
files = subprocess.run(['git', 'ls-files', '*.yml', '*.yaml'],
                       capture_output=True, text=True, check=True).stdout.split()
bad = []
for path in files:
    try:
        with open(path) as f:
            yaml.safe_load(f)
    except yaml.YAMLError as err:
        bad.append(f'{path}: {err}')
print('\n'.join(bad))
sys.exit(1 if bad else 0)
PY
step "whitespace" "$PYTHON" - <<'PY'
import subprocess, sys
files = subprocess.run(['git', 'ls-files'], capture_output=True, text=True,
                       check=True).stdout.split()
bad = []
for path in files:
    if path.startswith('docs/results/') or path == 'LICENSE':
        continue
    try:
        text = open(path, encoding='utf-8').read()
    except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
        continue  # binary, or a submodule
    lines = text.split('\n')
    trailing = [i + 1 for i, line in enumerate(lines) if line != line.rstrip()]
    if trailing:
        bad.append(f'{path}: trailing whitespace on lines {trailing[:5]}')
    if text and not text.endswith('\n') or text.endswith('\n\n'):
        bad.append(f'{path}: should end with exactly one newline')
print('\n'.join(bad))
sys.exit(1 if bad else 0)
PY
if ((status)); then
    echo "[lint] some checks failed (see above)"
else
    echo "[lint] clean"
fi
exit $status
