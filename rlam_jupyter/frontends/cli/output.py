"""What every ``rlam`` sub-command shares: exit codes, ``--store``/``--json``, printing."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rlam_jupyter.frontends.options import Option

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130


def common_options() -> argparse.ArgumentParser:
    """``--store`` and ``--json``, shared by every sub-command."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--store", default=None, help="trace store folder (default: $RLAM_HOME or ./.rlam)"
    )
    parent.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return parent


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print ``data`` as JSON with ``--json``, else the human-readable ``text``."""
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, default=str))
    else:
        print(text)


def add_options(parser: argparse.ArgumentParser, options: list[Option]) -> argparse.ArgumentParser:
    """Add options declared once in :mod:`rlam_jupyter.frontends.options`."""
    for flags, keywords in options:
        parser.add_argument(*flags, **keywords)
    return parser
