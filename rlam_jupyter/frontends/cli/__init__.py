"""The ``rlam`` command-line tool: inspect, verify, export and audit traces without Jupyter.

One module per topic adds its sub-commands (``register(subparsers, common)``); each
imports the core only when its command runs, so ``rlam --help`` starts in a blink.
"""

from rlam_jupyter.frontends.cli.main import build_parser, main
from rlam_jupyter.frontends.cli.output import (
    EXIT_CHECK_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    emit,
)

__all__ = [
    "EXIT_CHECK_FAILED",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "emit",
    "main",
]
