"""``rlam``: parse the command line, run one sub-command, map what happened to an exit code.

Exit codes: 0 all good, 1 a check failed (verify/audit, a refused import), 2 bad usage
or input (unknown run, missing file), 3 an internal error (a bug), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rlam_jupyter.errors import RlamError
from rlam_jupyter.frontends.cli import audit, bench, bundle, mcp, replay, runs, store
from rlam_jupyter.frontends.cli.output import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    common_options,
)
from rlam_jupyter.version import __version__

TOPICS = (runs, replay, bundle, audit, store, bench, mcp)
"""Modules that add their sub-commands with ``register(subparsers, common)``, in help order."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlam",
        description="Inspect, verify, export and audit R-LAM provenance traces.",
        epilog="Every command takes --store DIR (default: $RLAM_HOME or ./.rlam) and --json. "
        "Exit codes: 0 ok, 1 a check failed, 2 bad usage or input, 3 internal error.",
    )
    parser.add_argument("--version", action="version", version=f"rlam-jupyter {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = common_options()
    for topic in TOPICS:
        topic.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command; returns its exit code (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(handler(args) or 0)
    except RlamError as exc:
        print(f"rlam {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `rlam show RUN | head`
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        print(f"rlam {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        import traceback

        traceback.print_exc()
        print(
            f"rlam {args.command}: internal error (exit {EXIT_INTERNAL}); this is a bug, "
            "please report it with the traceback above",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())
