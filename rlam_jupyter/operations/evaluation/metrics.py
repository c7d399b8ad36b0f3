"""The paper's metrics, computed from what each mode kept and from its re-executions.

The harness records every :class:`Event` as it happens (each proposal, the decision on
it, each execution with its output hashes, each failure with its cause); a mode's
:class:`Kept` record is then asked, event by event, whether it holds that event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from rlam_jupyter.operations.evaluation.workflow import Experiment
from rlam_jupyter.store.catalog import connect

EventKind = Literal["proposal", "decision", "execution", "failure"]


@dataclass(frozen=True)
class Event:
    """Something that happened in a repetition, as the harness saw it happen."""

    kind: EventKind
    action: str
    params: Mapping[str, Any]
    key: str = ""
    """Where the mode put it (an ``rlam`` step id), when the mode has such a thing."""
    output_hashes: tuple[str, ...] = ()
    output_reprs: tuple[str, ...] = ()
    error_type: str = ""
    error_message: str = ""
    injected: bool = False


class Kept(Protocol):
    """What a mode keeps after a run; the evaluation only asks it whether an event is in it."""

    def has(self, event: Event) -> bool: ...


@dataclass
class TextKept:
    """Plain text a mode keeps (a notebook cell and its output, a results file)."""

    texts: list[str]

    def has(self, event: Event) -> bool:
        text = "\n".join(self.texts)
        if event.kind == "proposal":
            return bool(event.key) and event.key in text
        if event.kind == "decision":
            return False  # text has no record of a decision on a proposal
        if event.kind == "execution":
            return any(h in text for h in event.output_hashes) or (
                bool(event.output_reprs) and all(r in text for r in event.output_reprs)
            )
        return bool(event.error_type) and event.error_type in text and event.error_message in text


@dataclass
class Repetition:
    """One repetition of one experiment in one mode: its events, hashes, kept record, time."""

    mode: str
    experiment: Experiment
    index: int
    wall_s: float
    hashes: tuple[tuple[str, str], ...]
    events: list[Event]
    present: list[bool]


@dataclass
class TraceKept:
    """What this package kept: the step records of the store, read through DuckDB."""

    rows: dict[str, list[dict[str, Any]]]

    @classmethod
    def read(cls, store: Path) -> TraceKept:
        con = connect(store)
        table = con.execute(
            "SELECT step_id, action, params, status, outputs, error_type, error_message "
            "FROM step_events ORDER BY event_no"
        )
        names = [d[0] for d in table.description]
        rows: dict[str, list[dict[str, Any]]] = {}
        for row in table.fetchall():
            record = dict(zip(names, row, strict=True))
            rows.setdefault(record["step_id"], []).append(record)
        con.close()
        return cls(rows)

    def has(self, event: Event) -> bool:
        records = self.rows.get(event.key, [])
        same = [
            r
            for r in records
            if r["action"] == event.action
            and _subset(event.params, json.loads(r["params"] or "{}"))
        ]
        if event.kind == "proposal":
            return bool(same)
        if event.kind == "decision":
            return any(r["status"] in ("accepted", "rejected") for r in same)
        if event.kind == "execution":
            return any(
                r["status"] in ("succeeded", "cached")
                and tuple(json.loads(r["outputs"] or "{}").values()) == event.output_hashes
                for r in same
            )
        return any(
            r["status"] in ("failed", "rejected")
            and r["error_type"] == event.error_type
            and event.error_message in (r["error_message"] or "")
            for r in records
        )


def _subset(wanted: Mapping[str, Any], recorded: Mapping[str, Any]) -> bool:
    """Every proposed parameter is recorded with its value (defaults may be added)."""
    return all(k in recorded and recorded[k] == v for k, v in wanted.items())


def recorded_hashes(store: Path, run_ids: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """Output hashes of succeeded steps as the trace records them, run by run, step by step."""
    con = connect(store)
    pairs: list[tuple[str, str]] = []
    for role, run_id in zip(("main", "fork"), run_ids, strict=False):
        rows = con.execute(
            "SELECT seq, action, outputs FROM steps WHERE run_id = ? AND status = 'succeeded' "
            "ORDER BY seq",
            [run_id],
        ).fetchall()
        for seq, action, outputs in rows:
            for name, digest in json.loads(outputs or "{}").items():
                pairs.append((f"{role}:{seq}:{action}:{name}", str(digest)))
    con.close()
    return tuple(pairs)


@dataclass
class ModeSummary:
    """The paper's metrics for one mode and one experiment (or ``all`` experiments)."""

    mode: str
    experiment: str
    reruns: int
    reproducibility_success: float
    trace_completeness: float
    failure_visibility: float | None
    wall_ms: float
    overhead_vs_script: float | None = None

    def as_row(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "experiment": self.experiment,
            "re-runs": self.reruns,
            "reproducibility": round(self.reproducibility_success, 3),
            "trace completeness": round(self.trace_completeness, 3),
            "failure visibility": None
            if self.failure_visibility is None
            else round(self.failure_visibility, 3),
            "wall ms": round(self.wall_ms, 1),
            "overhead vs script": None
            if self.overhead_vs_script is None
            else f"{self.overhead_vs_script * 100:+.0f}%",
        }


def summarise(reps: Sequence[Repetition]) -> ModeSummary:
    """Metrics of one (mode, experiment) from its repetitions; the first is the reference."""
    reference, *reruns = sorted(reps, key=lambda r: r.index)
    same = sum(r.hashes == reference.hashes and bool(r.hashes) for r in reruns)
    events = [(e, p) for r in reps for e, p in zip(r.events, r.present, strict=True)]
    failures = [p for e, p in events if e.kind == "failure" and e.injected]
    walls = sorted(r.wall_s for r in (reruns or [reference]))
    return ModeSummary(
        mode=reference.mode,
        experiment=reference.experiment,
        reruns=len(reruns),
        reproducibility_success=same / len(reruns) if reruns else float("nan"),
        trace_completeness=sum(p for _, p in events) / len(events) if events else 0.0,
        failure_visibility=sum(failures) / len(failures) if failures else None,
        wall_ms=walls[len(walls) // 2] * 1e3,
    )


def combine(summaries: Sequence[ModeSummary], reps: Sequence[Repetition]) -> ModeSummary:
    """One row per mode over every experiment (event-weighted, like the per-experiment rows)."""
    mode = summaries[0].mode
    events = [(e, p) for r in reps for e, p in zip(r.events, r.present, strict=True)]
    failures = [p for e, p in events if e.kind == "failure" and e.injected]
    reruns = sum(s.reruns for s in summaries)
    reproduced = sum(s.reproducibility_success * s.reruns for s in summaries)
    return ModeSummary(
        mode=mode,
        experiment="all",
        reruns=reruns,
        reproducibility_success=reproduced / reruns if reruns else float("nan"),
        trace_completeness=sum(p for _, p in events) / len(events) if events else 0.0,
        failure_visibility=sum(failures) / len(failures) if failures else None,
        wall_ms=sum(s.wall_ms for s in summaries),
    )
