"""``rlam compact``, ``rlam export-parquet``, ``rlam gc`` and ``rlam repair``: store upkeep."""

from __future__ import annotations

import argparse
from typing import Any

from rlam_jupyter.frontends.cli.output import EXIT_OK, emit

GRACE_S = 3600.0
"""Default of ``rlam gc --grace`` (the store's own default, restated so --help stays light)."""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    compact = sub.add_parser(
        "compact",
        parents=[common],
        help="move the journals of closed runs into Parquet (safe while kernels write)",
    )
    compact.add_argument("runs", nargs="*", help="run ids, prefixes or names (default: all)")
    compact.add_argument(
        "--open", action="store_true", help="also compact open runs up to now (keeps journals)"
    )
    compact.set_defaults(handler=_compact)
    parquet = sub.add_parser(
        "export-parquet",
        parents=[common],
        help="write the trace tables as Parquet files (one per table) to DEST",
    )
    parquet.add_argument("dest", help="folder to write runs.parquet, steps.parquet, ...")
    parquet.add_argument(
        "--events", action="store_true", help="also write step_events.parquet (every status)"
    )
    parquet.set_defaults(handler=_export_parquet)
    gc = sub.add_parser("gc", parents=[common], help="delete stored objects that no run references")
    gc.add_argument("--dry-run", action="store_true", help="only list what would go")
    gc.add_argument(
        "--grace",
        type=float,
        default=GRACE_S,
        metavar="SECONDS",
        help=f"keep unreferenced objects younger than this (default {GRACE_S:.0f})",
    )
    gc.set_defaults(handler=_gc)
    _register_repair(sub, common)


def _register_repair(sub: Any, common: argparse.ArgumentParser) -> None:
    repair = sub.add_parser(
        "repair",
        parents=[common],
        help="record the steps of dead kernels as interrupted and end their runs",
        description="For every open run whose writers are all dead (killed kernel, crashed "
        "script), append 'interrupted' records for its steps in flight and end the run "
        "'interrupted'. Old journal lines are never changed; writers whose fate is unknown "
        "(another host) are left alone. Exit 0.",
    )
    repair.add_argument(
        "--dry-run", action="store_true", help="say what would be recorded, record nothing"
    )
    repair.set_defaults(handler=_repair)


# Handlers import the store when they run: `rlam --help` loads neither DuckDB nor Arrow.


def _compact(args: argparse.Namespace) -> int:
    # lazy: DuckDB, for rlam --help start-up
    from rlam_jupyter.store.catalog import connect, resolve_run
    from rlam_jupyter.store.compaction import compact  # lazy: DuckDB, for rlam --help start-up
    from rlam_jupyter.store.resolve import resolve_store  # lazy: Arrow, for rlam --help start-up

    layout = resolve_store(args.store)
    runs = None
    if args.runs:
        con = connect(layout)
        try:
            runs = [resolve_run(con, ref) for ref in args.runs]
        finally:
            con.close()
    report = compact(layout, runs, include_open=args.open)
    emit(args, report.__dict__, report.summary())
    return EXIT_OK


def _export_parquet(args: argparse.Namespace) -> int:
    from rlam_jupyter.store.parquet import export_parquet  # lazy: DuckDB, for rlam --help start-up

    summary = export_parquet(args.dest, args.store, events=args.events)
    lines = [f"{table:<14} {n:>10} rows" for table, n in summary["tables"].items()]
    emit(args, summary, f"wrote {summary['dest']} in {summary['seconds']} s\n" + "\n".join(lines))
    return EXIT_OK


def _gc(args: argparse.Namespace) -> int:
    from rlam_jupyter.store.gc import gc  # lazy: DuckDB, for rlam --help start-up

    report = gc(args.store, dry_run=args.dry_run, grace_s=args.grace)
    emit(args, report.__dict__, report.summary())
    return EXIT_OK


def _repair(args: argparse.Namespace) -> int:
    from rlam_jupyter.store.repair import repair  # lazy: DuckDB, for rlam --help start-up

    report = repair(args.store, dry_run=args.dry_run)
    emit(args, report.to_json(), report.summary())
    return EXIT_OK
