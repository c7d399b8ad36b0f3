#!/usr/bin/env bash
# Install rlam-jupyter and execute the quickstart notebook headlessly, end to end.
# This is the README's "run the demo" command.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet -e . nbclient nbformat ipykernel
python -m rlam_jupyter.frontends.demo notebooks/quickstart.ipynb
