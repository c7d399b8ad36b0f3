"""``rlam audit [RUN] [--no-reproduce]``: exit 1 when a metric is below its target."""

from __future__ import annotations

import argparse
from typing import Any

from rlam_jupyter.frontends.cli.output import EXIT_CHECK_FAILED, EXIT_OK, add_options, emit
from rlam_jupyter.frontends.options import AUDIT


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "audit",
        parents=[common],
        help="the paper's metrics (trace completeness, failure visibility, reproducibility)",
    )
    add_options(parser, AUDIT)
    parser.add_argument(
        "--allow-skipped",
        action="store_true",
        help="exit 0 even when steps could not be re-executed (they are still counted and named)",
    )
    parser.set_defaults(handler=_audit)


def _audit(args: argparse.Namespace) -> int:
    from rlam_jupyter.operations.audit import audit  # lazy: DuckDB and the engine, for start-up

    report = audit(args.run, args.store, reproduce=not args.no_reproduce)
    emit(args, report.to_json(), repr(report))
    return EXIT_OK if report.passes(args.allow_skipped) else EXIT_CHECK_FAILED
