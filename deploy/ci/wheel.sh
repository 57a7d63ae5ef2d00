#!/usr/bin/env bash
# Build the vecmon wheel and a wheelhouse of its dependencies (dist/wheels, also what the
# offline image build installs from), install them into a clean venv (not editable, no index)
# and smoke-test the installed vecmon against PostgreSQL (deploy/ci/smoke.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-python3}
start=$(date +%s)
rm -rf dist/wheels build/lib
"$python" -m pip wheel --quiet --wheel-dir dist/wheels .
echo "wheel: $(ls dist/wheels/vecmon-*.whl) $(du -k dist/wheels/vecmon-*.whl | cut -f1) KiB;" \
     "wheelhouse $(ls dist/wheels | wc -l) wheels, $(du -sm dist/wheels | cut -f1) MiB; built in $(( $(date +%s) - start ))s"
venv=$(mktemp -d /tmp/vecmon-wheel-venv.XXXXXX)
trap 'rm -rf "$venv"' EXIT
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --no-index --find-links dist/wheels vecmon
(cd / && "$venv/bin/python" - "$venv") <<'PY'
import sys, monitor
from pathlib import Path
assert Path(monitor.__file__).is_relative_to(sys.argv[1]), monitor.__file__  # the wheel, not the checkout
PY
deploy/ci/smoke.sh venv "$venv/bin/vecmon"
echo "wheel step: $(( $(date +%s) - start ))s"
