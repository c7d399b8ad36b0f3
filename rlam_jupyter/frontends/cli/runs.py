"""``rlam runs`` and ``rlam show``: what a store holds, read through its catalog."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rlam_jupyter.frontends.cli.output import EXIT_OK, EXIT_USAGE, emit


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``runs`` and ``show``."""
    runs = sub.add_parser(
        "runs",
        parents=[common],
        help="list the runs in a store",
        description="List the runs in a store: id, name, seed, status, how many steps "
        "failed or were refused, and the run a fork came from. Exit 0.",
    )
    runs.set_defaults(handler=_runs)
    show = sub.add_parser(
        "show",
        parents=[common],
        help="show the steps of a run (or one step)",
        description="Show a run's steps, a fork's inherited prefix included, or every "
        "recorded field of one step with --step. Exit 2 when the run or step is unknown.",
    )
    show.add_argument("run", help="run id, unique id prefix, or run name")
    show.add_argument("--step", default=None, help="step number (seq) or step id")
    show.set_defaults(handler=_show)


def _runs(args: argparse.Namespace) -> int:
    from rlam_jupyter.store.catalog import connect, rows  # lazy: DuckDB, for start-up

    con = connect(args.store)
    found = rows(
        con,
        """
        SELECT r.run_id, r.name, r.seed, r.status, r.parent_run_id, r.fork_seq, r.created_at,
               count(s.step_id) AS steps,
               count(*) FILTER (WHERE s.status = 'failed') AS failed,
               count(*) FILTER (WHERE s.status = 'rejected') AS rejected
        FROM runs r LEFT JOIN steps s USING (run_id)
        GROUP BY ALL ORDER BY r.created_at
        """,
    )
    lines = [f"{'run id':<26}  {'name':<24} {'seed':>6} {'status':<9} steps failed rejected"]
    for row in found:
        fork = (
            f"  (fork of {row['parent_run_id'][-6:]} at {row['fork_seq']})"
            if row["parent_run_id"]
            else ""
        )
        lines.append(
            f"{row['run_id']:<26}  {row['name'][:24]:<24} {row['seed']:>6} {row['status']:<9} "
            f"{row['steps']:>5} {row['failed']:>6} {row['rejected']:>8}{fork}"
        )
    emit(args, found, "\n".join(lines) if found else "no runs in this store")
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    from rlam_jupyter.store.catalog import connect, resolve_run, rows  # lazy: DuckDB, start-up

    con = connect(args.store)
    run_id = resolve_run(con, args.run)
    query = "SELECT * EXCLUDE (event_no) FROM run_steps(?) ORDER BY seq"
    steps = rows(con, query, [run_id])
    if args.step is not None:
        steps = [r for r in steps if str(r["seq"]) == args.step or r["step_id"] == args.step]
        if not steps:
            print(f"rlam show: run {run_id} has no step {args.step!r}", file=sys.stderr)
            return EXIT_USAGE
        step = steps[0]
        text = "\n".join(
            f"{k:>22}: {v}" for k, v in step.items() if v not in (None, "", "{}", "[]")
        )
        emit(args, step, text)
        return EXIT_OK
    lines = [f"run {run_id}"]
    for r in steps:
        duration = "" if r["duration_ms"] is None else f"{r['duration_ms']:.1f} ms"
        detail = r["error_message"] or ", ".join(
            v[:10] for v in json.loads(r["outputs"] or "{}").values()
        )
        lines.append(f"{r['seq']:>5} {r['status']:<9} {r['action']:<20} {duration:>10}  {detail}")
    emit(args, steps, "\n".join(lines))
    return EXIT_OK
