"""What replay, fork and diff hand back: plain records that display as HTML tables in a
notebook and as aligned text in a terminal (and turn into JSON for the CLI)."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rlam_jupyter.engine.trace import (
    OutputRuns,
    RunsOutput,
    StepResult,
    steps_table_html,
    steps_table_text,
)

_STYLE = (
    "<style>.rlam-replay td,.rlam-replay th{padding:2px 8px;text-align:left;vertical-align:top}"
    ".rlam-bad td{color:var(--jp-error-color1,#d32f2f)}"
    ".rlam-good td:nth-child(4){color:var(--jp-success-color1,#388e3c)}</style>"
)
BAD_STATUSES = ("failed", "missing", "unrestorable", "incomplete", "interrupted", "diverged")


def _table(caption: str, header: Sequence[str], rows: Sequence[tuple[str, Sequence[Any]]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        f"<tr class='{css}'>"
        + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in values)
        + "</tr>"
        for css, values in rows
    )
    cap = f"<caption style='text-align:left'>{html.escape(caption)}</caption>" if caption else ""
    return f"<table class='rlam-replay'>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[("" if v is None else str(v)).replace("\n", " ") for v in row] for row in rows]
    widths = [min(60, max([len(h)] + [len(r[i]) for r in cells])) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for r in cells:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def format_env_difference(key: str, recorded: Any, now: Any, labels: tuple[str, str]) -> str:
    """``packages.numpy: 1.26.4 (recorded) → 2.4.6 (now)``; absent sides say so."""
    left = "absent" if recorded is None else str(recorded)
    right = "absent" if now is None else str(now)
    return f"{key}: {left} ({labels[0]}) → {right} ({labels[1]})"


@dataclass(frozen=True)
class ReplayStep:
    """One step as replay found it, and (with ``verify``) what re-execution gave."""

    seq: int
    step_id: str
    action: str
    status: str
    """restored · failed · rejected · missing · unrestorable · incomplete"""
    detail: str = ""
    names: tuple[str, ...] = ()
    inherited_from: str | None = None
    verify: str | None = None
    """identical · diverged · skipped (external) · skipped (<reason>) · None (not verified)"""
    differences: tuple[str, ...] = ()

    @property
    def ran(self) -> bool:
        """The step executed (or was served) when recorded: it has a result to reproduce.
        Refused and unfinished steps have none."""
        return self.status in ("restored", "failed", "missing", "unrestorable")

    @property
    def not_verified(self) -> bool:
        """It ran, verification was asked for, and it was not re-executed."""
        return self.ran and bool(self.verify) and str(self.verify).startswith("skipped")

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "step_id": self.step_id,
            "action": self.action,
            "status": self.status,
            "detail": self.detail,
            "names": list(self.names),
            "inherited_from": self.inherited_from,
            "verify": self.verify,
            "differences": list(self.differences),
        }


@dataclass
class ReplayReport(RunsOutput):
    """The outcome of ``replay(run)``: restored values, step by step status, environment drift."""

    run_id: str
    run_name: str
    upto: int | None
    steps: list[ReplayStep]
    values: dict[str, Any]
    env_differences: list[tuple[str, Any, Any]]
    verified: bool
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def output_runs(self) -> OutputRuns:
        return OutputRuns(shown=(self.run_id,))  # restores, records nothing

    @property
    def counts(self) -> Counter[str]:
        return Counter(s.verify if self.verified and s.verify else s.status for s in self.steps)

    @property
    def ok(self) -> bool:
        """True when every step restored (failed steps excepted: they are history) and,
        when verified, every step that ran was re-executed and nothing diverged."""
        return self.passes(allow_skipped=False)

    def passes(self, allow_skipped: bool) -> bool:
        """``ok``; with ``allow_skipped``, steps that could not be re-executed (named in
        :attr:`not_verified`) do not fail it."""
        restoring = all(s.status not in ("missing", "unrestorable") for s in self.steps)
        skipped = bool(self.not_verified) and not allow_skipped
        return restoring and not skipped and not any(s.verify == "diverged" for s in self.steps)

    @property
    def not_verified(self) -> list[ReplayStep]:
        """Steps that ran but were not re-executed by ``verify`` (the reason is in ``verify``)."""
        return [s for s in self.steps if self.verified and s.not_verified]

    @property
    def diverged(self) -> list[ReplayStep]:
        return [s for s in self.steps if s.verify == "diverged"]

    def summary(self) -> str:
        what = "verified" if self.verified else "replayed"
        upto = f" up to step {self.upto}" if self.upto is not None else ""
        counts = ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items()))
        env = (
            f"; environment differs in {len(self.env_differences)} place(s)"
            if self.env_differences
            else "; environment matches the recording"
        )
        return (
            f"run {self.run_name} ({self.run_id}) {what}{upto}: {len(self.steps)} step(s) "
            f"({counts}); {len(self.values)} name(s) restored in {self.elapsed_s * 1e3:.0f} ms{env}"
        )

    def env_lines(self) -> list[str]:
        return [
            format_env_difference(k, a, b, ("recorded", "now")) for k, a, b in self.env_differences
        ]

    def _rows(self) -> list[list[Any]]:
        rows = []
        for s in self.steps:
            detail = s.detail
            if s.differences:
                detail = "; ".join(s.differences)
            row: list[Any] = [s.seq, s.action, s.status]
            if self.verified:
                row.append(s.verify or "")
            row += [", ".join(s.names), detail, s.inherited_from or ""]
            rows.append(row)
        return rows

    def _header(self) -> list[str]:
        header = ["#", "action", "replay"]
        if self.verified:
            header.append("verify")
        return [*header, "names", "detail", "inherited from"]

    def _repr_html_(self) -> str:
        rows = []
        for s, values in zip(self.steps, self._rows(), strict=True):
            bad = s.status in BAD_STATUSES or s.verify == "diverged"
            rows.append(("rlam-bad" if bad else "rlam-good", values))
        parts = [_table(self.summary(), self._header(), rows)]
        if self.env_differences:
            parts.append(
                _table(
                    "environment: recorded vs now",
                    ["what", "recorded", "now"],
                    [("", [k, a, b]) for k, a, b in self.env_differences],
                )
            )
        parts += [f"<p>{html.escape(n)}</p>" for n in self.notes]
        return "".join(parts) + _STYLE

    def __repr__(self) -> str:
        lines = [self.summary(), _text_table(self._header(), self._rows())]
        if self.not_verified:
            lines.append(
                f"{len(self.not_verified)} step(s) not verified (not re-executed): "
                + ", ".join(f"{s.seq} {s.action}" for s in self.not_verified)
            )
        if self.env_differences:
            lines += ["environment differences:", *("  " + x for x in self.env_lines())]
        lines += self.notes
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_name": self.run_name,
            "upto": self.upto,
            "verified": self.verified,
            "ok": self.ok,
            "counts": dict(self.counts),
            "not_verified": [
                f"step {s.seq} ({s.action}) {s.verify}: {'; '.join(s.differences)}".rstrip(": ")
                for s in self.not_verified
            ],
            "steps": [s.to_json() for s in self.steps],
            "restored_names": sorted(self.values),
            "env_differences": [
                {"what": k, "recorded": a, "now": b} for k, a, b in self.env_differences
            ],
            "elapsed_s": self.elapsed_s,
            "notes": self.notes,
        }


@dataclass
class ForkReport(RunsOutput):
    """A new run branched from a recorded step: what ran, what came from the cache."""

    run_id: str
    name: str
    parent_run_id: str
    parent_name: str
    at: int
    results: list[StepResult]
    shared_steps: int
    loader: Callable[[str], Any] | None = None
    names: tuple[str, ...] = ()
    elapsed_s: float = 0.0
    run: Any = None
    """The engine's ``Run`` of the fork (to add steps to it or close it)."""

    def __getitem__(self, name: str) -> Any:
        """The value bound to ``name`` in the fork (loaded from the store on first use)."""
        if self.loader is None or name not in self.names:
            raise KeyError(f"{name!r} is not bound in fork {self.name}; bound: {self.names}")
        return self.loader(name)

    @property
    def ok(self) -> bool:
        return all(r.status in ("succeeded", "cached") for r in self.results)

    def output_runs(self) -> OutputRuns:
        return OutputRuns(
            self.run_id, (self.run_id, self.parent_run_id), tuple(r.step_id for r in self.results)
        )

    @property
    def counts(self) -> Counter[str]:
        return Counter(r.status for r in self.results)

    def summary(self) -> str:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items()))
        return (
            f"fork {self.name} ({self.run_id}) of {self.parent_name} at step {self.at}: "
            f"{self.shared_steps} step(s) shared by reference; {counts} "
            f"({self.elapsed_s * 1e3:.0f} ms)"
        )

    def _repr_html_(self) -> str:
        return steps_table_html(self.results, self.summary())

    def __repr__(self) -> str:
        return steps_table_text(self.results, self.summary())

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "name": self.name,
            "parent_run_id": self.parent_run_id,
            "at": self.at,
            "shared_steps": self.shared_steps,
            "counts": dict(self.counts),
            "steps": [
                {
                    "seq": r.seq,
                    "step_id": r.step_id,
                    "action": r.action,
                    "status": r.status,
                    "outputs": dict(r.outputs),
                    "error": r.error.message if r.error else None,
                }
                for r in self.results
            ],
        }


@dataclass(frozen=True)
class StepDiff:
    """One aligned position of two runs and what differs there."""

    seq: int
    action_a: str | None
    action_b: str | None
    status_a: str | None
    status_b: str | None
    shared: bool
    differences: tuple[str, ...]


@dataclass(frozen=True)
class MetricDiff:
    seq: int
    metric: str
    a: Any
    b: Any

    @property
    def delta(self) -> float | None:
        if isinstance(self.a, (int, float)) and isinstance(self.b, (int, float)):
            return float(self.b) - float(self.a)
        return None


@dataclass
class RunDiff(RunsOutput):
    """Step-aligned differences between two runs (aligned by step position)."""

    a_id: str
    a_name: str
    b_id: str
    b_name: str
    steps: list[StepDiff]
    metrics: list[MetricDiff]
    env_differences: list[tuple[str, Any, Any]]

    def output_runs(self) -> OutputRuns:
        return OutputRuns(shown=(self.a_id, self.b_id))

    @property
    def differing(self) -> list[StepDiff]:
        return [s for s in self.steps if s.differences]

    @property
    def identical(self) -> bool:
        return not self.differing and not self.env_differences

    def summary(self) -> str:
        shared = sum(1 for s in self.steps if s.shared)
        same = len(self.steps) - len(self.differing)
        return (
            f"{self.a_name} vs {self.b_name}: {len(self.steps)} aligned step(s), {same} identical "
            f"({shared} shared by reference), {len(self.differing)} differ"
            + (
                f"; environment differs in {len(self.env_differences)} place(s)"
                if self.env_differences
                else ""
            )
        )

    def _step_rows(self) -> list[list[Any]]:
        return [
            [
                s.seq,
                s.action_a if s.action_a == s.action_b else f"{s.action_a} | {s.action_b}",
                s.status_a if s.status_a == s.status_b else f"{s.status_a} | {s.status_b}",
                "; ".join(s.differences),
            ]
            for s in self.differing
        ]

    def _metric_rows(self) -> list[list[Any]]:
        return [
            [m.seq, m.metric, m.a, m.b, "" if m.delta is None else f"{m.delta:+.4g}"]
            for m in self.metrics
        ]

    def _repr_html_(self) -> str:
        parts = [
            _table(
                self.summary(),
                ["#", "action", "status", "differences (a → b)"],
                [("", r) for r in self._step_rows()],
            )
        ]
        if self.metrics:
            parts.append(
                _table(
                    "metrics",
                    ["#", "metric", self.a_name, self.b_name, "change"],
                    [("", r) for r in self._metric_rows()],
                )
            )
        if self.env_differences:
            parts.append(
                _table(
                    "environment",
                    ["what", self.a_name, self.b_name],
                    [("", [k, a, b]) for k, a, b in self.env_differences],
                )
            )
        return "".join(parts) + _STYLE

    def __repr__(self) -> str:
        lines = [self.summary()]
        if self.differing:
            lines.append(
                _text_table(["#", "action", "status", "differences (a → b)"], self._step_rows())
            )
        if self.metrics:
            lines += [
                "metrics:",
                _text_table(["#", "metric", "a", "b", "change"], self._metric_rows()),
            ]
        if self.env_differences:
            lines += ["environment:"] + [
                "  " + format_env_difference(k, a, b, (self.a_name, self.b_name))
                for k, a, b in self.env_differences
            ]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "a": {"run_id": self.a_id, "name": self.a_name},
            "b": {"run_id": self.b_id, "name": self.b_name},
            "steps": [
                {
                    "seq": s.seq,
                    "action_a": s.action_a,
                    "action_b": s.action_b,
                    "status_a": s.status_a,
                    "status_b": s.status_b,
                    "shared": s.shared,
                    "differences": list(s.differences),
                }
                for s in self.steps
            ],
            "metrics": [
                {"seq": m.seq, "metric": m.metric, "a": m.a, "b": m.b, "delta": m.delta}
                for m in self.metrics
            ],
            "env_differences": [{"what": k, "a": a, "b": b} for k, a, b in self.env_differences],
        }


def short(value: Any, limit: int = 40) -> str:
    """A compact rendering for tables: hashes shortened, long reprs cut."""
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12] + "…"
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_param_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    return [
        f"{key}: {short(a.get(key, '∅'))} → {short(b.get(key, '∅'))}"
        for key in sorted(set(a) | set(b))
        if a.get(key) != b.get(key)
    ]
