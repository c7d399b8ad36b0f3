"""What ``diff`` hands back: two runs aligned step by step, as HTML tables in a notebook,
aligned text in a terminal and JSON for the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlam_jupyter.engine.trace import OutputRuns, RunsOutput
from rlam_jupyter.operations.replay.tables import (
    TABLE_STYLE,
    format_env_difference,
    html_table,
    text_table,
)


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
            html_table(
                self.summary(),
                ["#", "action", "status", "differences (a → b)"],
                [("", r) for r in self._step_rows()],
            )
        ]
        if self.metrics:
            parts.append(
                html_table(
                    "metrics",
                    ["#", "metric", self.a_name, self.b_name, "change"],
                    [("", r) for r in self._metric_rows()],
                )
            )
        if self.env_differences:
            parts.append(
                html_table(
                    "environment",
                    ["what", self.a_name, self.b_name],
                    [("", [k, a, b]) for k, a, b in self.env_differences],
                )
            )
        return "".join(parts) + TABLE_STYLE

    def __repr__(self) -> str:
        lines = [self.summary()]
        if self.differing:
            lines.append(
                text_table(["#", "action", "status", "differences (a → b)"], self._step_rows())
            )
        if self.metrics:
            lines += [
                "metrics:",
                text_table(["#", "metric", "a", "b", "change"], self._metric_rows()),
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
