"""What ``replay`` and ``fork`` hand back: plain records that display as HTML tables in a
notebook and as aligned text in a terminal (and turn into JSON for the CLI). The report of
``diff`` is in :mod:`rlam_jupyter.operations.replay.diff_views`."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlam_jupyter.engine.trace import (
    OutputRuns,
    RunsOutput,
    StepResult,
    steps_table_html,
    steps_table_text,
)
from rlam_jupyter.operations.replay.tables import (
    TABLE_STYLE,
    format_env_difference,
    html_table,
    text_table,
)

BAD_STATUSES = ("failed", "missing", "unrestorable", "incomplete", "interrupted", "diverged")


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
        parts = [html_table(self.summary(), self._header(), rows)]
        if self.env_differences:
            parts.append(
                html_table(
                    "environment: recorded vs now",
                    ["what", "recorded", "now"],
                    [("", [k, a, b]) for k, a, b in self.env_differences],
                )
            )
        parts += [f"<p>{html.escape(n)}</p>" for n in self.notes]
        return "".join(parts) + TABLE_STYLE

    def __repr__(self) -> str:
        lines = [self.summary(), text_table(self._header(), self._rows())]
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
