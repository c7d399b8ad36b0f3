"""``rlam repair``: record what a dead writer could not — its steps were interrupted, its run ended.

Readers already *show* a run whose every writer died as ``interrupted`` (see
:mod:`rlam_jupyter.store.catalog`). Repair makes that a fact of the trace: for each such
run it appends, in a journal of its own, one ``interrupted`` record per step that was
in flight (the step's fields, status ``interrupted``, error ``WriterDied`` with the
verdict on the writer) and a run record with status ``interrupted``. Nothing is
rewritten: the dead writer's journal stays as it was. The run is then closed, so
compaction moves it to Parquet. An interrupted step is a gap in the trace; repair makes
it visible and permanent, never complete: the audit keeps counting it.

Writers whose fate is ``unknown`` (another host, a remote store's copy) are never
repaired: only a writer shown dead is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from rlam_jupyter.store.catalog import Connection, connect, rows
from rlam_jupyter.store.compaction import compact_ended_run
from rlam_jupyter.store.journal import JournalWriter, now_us
from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.store.resolve import StoreRef, resolve_store
from rlam_jupyter.store.schema import INTERRUPTED, RUNS, STEPS, WRITER_DIED


@dataclass(frozen=True)
class RepairedRun:
    """One run repair ended: which steps it recorded as interrupted, and why."""

    run_id: str
    name: str
    reason: str
    steps: tuple[tuple[int, str, str], ...]
    """(seq, step id, action) of each step recorded as interrupted."""


@dataclass
class RepairReport:
    """What :func:`repair` found and recorded."""

    repaired: list[RepairedRun] = field(default_factory=list)
    unknown: list[tuple[str, str]] = field(default_factory=list)
    """(run id, reason) of open runs whose writer's fate cannot be established: left open."""
    dry_run: bool = False

    def summary(self) -> str:
        verb = "would record" if self.dry_run else "recorded"
        lines = []
        for run in self.repaired:
            steps = ", ".join(f"step {seq} ({action})" for seq, _id, action in run.steps)
            lines.append(
                f"run {run.name} ({run.run_id}): {run.reason}; {verb} "
                f"{len(run.steps)} interrupted step(s){': ' + steps if steps else ''}, "
                f"and the run ended 'interrupted'"
            )
        for run_id, reason in self.unknown:
            lines.append(f"run {run_id}: left open, its writer may be alive ({reason})")
        if not lines:
            return "nothing to repair: no open run has a dead writer"
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "repaired": [
                {
                    "run_id": r.run_id,
                    "name": r.name,
                    "reason": r.reason,
                    "interrupted_steps": [
                        {"seq": seq, "step_id": step_id, "action": action}
                        for seq, step_id, action in r.steps
                    ],
                }
                for r in self.repaired
            ],
            "unknown": [{"run_id": run_id, "reason": reason} for run_id, reason in self.unknown],
        }


def repair(store: StoreRef = None, *, dry_run: bool = False) -> RepairReport:
    """Record interrupted steps and end the runs of dead writers (see the module docstring)."""
    layout = resolve_store(store)
    report = RepairReport(dry_run=dry_run)
    con = connect(layout)
    try:
        dead = [r[0] for r in con.execute("SELECT run_id FROM _dead_writer_runs").fetchall()]
        for run_id, reason in con.execute(
            "SELECT run_id, string_agg(reason, '; ') FROM writers WHERE state = 'unknown' "
            "AND run_id IN (SELECT run_id FROM runs WHERE status = 'open') GROUP BY run_id "
            "ORDER BY run_id"
        ).fetchall():
            report.unknown.append((str(run_id), str(reason)))
        for run_id in dead:
            repaired = _repair_run(con, layout, run_id, dry_run)
            if repaired is not None:
                report.repaired.append(repaired)
    finally:
        con.close()
    if not dry_run:
        for run in report.repaired:
            compact_ended_run(layout, run.run_id)
    return report


def _repair_run(
    con: Connection, layout: StoreLayout, run_id: str, dry_run: bool
) -> RepairedRun | None:
    run = rows(con, "SELECT * FROM runs WHERE run_id = ?", [run_id])
    if not run or run[0]["status"] != INTERRUPTED:
        return None  # ended meanwhile, or its newest record is in a part we cannot see
    reasons = [
        r[0]
        for r in con.execute(
            "SELECT reason FROM writers WHERE run_id = ? AND state = 'dead' ORDER BY journal",
            [run_id],
        ).fetchall()
    ]
    reason = "; ".join(reasons)
    steps = rows(
        con,
        "SELECT * FROM steps WHERE run_id = ? AND status = ? ORDER BY seq",
        [run_id, INTERRUPTED],
    )
    repaired = RepairedRun(
        run_id,
        str(run[0]["name"]),
        reason,
        tuple((int(s["seq"]), str(s["step_id"]), str(s["action"])) for s in steps),
    )
    if dry_run:
        return repaired
    writer = JournalWriter(layout, run_id)
    try:
        for step in steps:
            record = {k: _json_value(step.get(k)) for k in STEPS.names if k != "event_no"}
            record.update(
                status=INTERRUPTED,
                error_type=WRITER_DIED,
                error_message=f"the step never finished: {reason}",
                recorded_at=now_us(),
            )
            writer.append("steps", record)
        # ``writer`` stays the dead kernel's: bundle export finds a kernel's runs (and the
        # sidebar's forks of them) by it. Repair's own journal names repair as its writer.
        ended = {k: _json_value(run[0].get(k)) for k in RUNS.names if k != "event_no"}
        ended.update(status=INTERRUPTED, ended_at=now_us())
        writer.append("runs", ended)
    finally:
        writer.close()
    return repaired


def _json_value(value: Any) -> Any:
    """A view's value as the journal stores it (timestamps as epoch microseconds)."""
    if isinstance(value, datetime):
        return (value - _EPOCH) // timedelta(microseconds=1)
    return value


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
