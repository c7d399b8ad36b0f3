#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine, then run lint, types and tests.
# This is the README's test command; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  echo "== installing Debian's chromium for the browser tests"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi

echo "== installing rlam-jupyter with its test extras (builds the JupyterLab extension)"
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e ".[test]"

echo "== ruff"
ruff check rlam_jupyter tests benchmarks
echo "== mypy --strict"
mypy rlam_jupyter
echo "== lint-imports (layers, and a core without IPython)"
lint-imports

echo "== pytest"
status=0
python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests"; exit 1
fi
exit "$status"
