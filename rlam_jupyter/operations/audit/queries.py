"""The DuckDB queries an audit reads the trace with: which runs there are, and one run's
records (its events grouped by step, edges, LLM calls, approvals, writers, and which of
its outputs have an artifact record)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rlam_jupyter.store.catalog import Connection, rows

Row = dict[str, Any]


def run_ids_oldest_first(con: Connection) -> list[str]:
    return [r[0] for r in con.execute("SELECT run_id FROM runs ORDER BY created_at").fetchall()]


@dataclass(frozen=True)
class RunTrace:
    """What the trace holds of one run, as the audit's checks read it."""

    run: Row
    events: list[Row]
    """Every step event, in the order they were recorded."""
    by_step: dict[str, list[Row]]
    """The events of each step, oldest first; steps in the order they first appear."""
    latest: dict[str, Row]
    """Each step's newest event."""
    edges: set[tuple[str, str, str]]
    """``(src, dst, type)`` of every edge."""
    calls: list[Row]
    approvals: list[Row]
    writers: list[Row]
    known_artifacts: set[str]
    """The outputs of the steps' newest events that have an artifact record."""


def read_run(con: Connection, run_id: str) -> RunTrace:
    run = rows(con, "SELECT * FROM runs WHERE run_id = ?", [run_id])[0]
    events = rows(con, "SELECT * FROM step_events WHERE run_id = ? ORDER BY event_no", [run_id])
    edges = rows(con, "SELECT src, dst, type, role FROM edges WHERE run_id = ?", [run_id])
    calls = rows(con, "SELECT call_id, error, attributes FROM llm_calls WHERE run_id = ?", [run_id])
    approvals = rows(con, "SELECT step_id, decision FROM approvals WHERE run_id = ?", [run_id])
    by_step: dict[str, list[Row]] = {}
    for event in events:
        by_step.setdefault(event["step_id"], []).append(event)
    latest = {step_id: evs[-1] for step_id, evs in by_step.items()}
    return RunTrace(
        run=run,
        events=events,
        by_step=by_step,
        latest=latest,
        edges={(e["src"], e["dst"], e["type"]) for e in edges},
        calls=calls,
        approvals=approvals,
        writers=rows(con, "SELECT state, reason FROM writers WHERE run_id = ?", [run_id]),
        known_artifacts=_known_artifacts(con, latest),
    )


def _known_artifacts(con: Connection, latest: dict[str, Row]) -> set[str]:
    output_ids = {a for s in latest.values() for a in json.loads(s["outputs"] or "{}").values()}
    return {
        r["artifact_id"]
        for r in rows(
            con,
            "SELECT DISTINCT artifact_id FROM artifacts WHERE artifact_id IN "
            "(SELECT unnest(?::VARCHAR[]))",
            [sorted(output_ids)],
        )
    }
