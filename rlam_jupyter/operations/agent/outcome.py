"""How an agent run is bounded and how it ends: its budgets (:class:`AgentLimits`), its
outcome (:class:`AgentOutcome`, which displays as a table in a notebook), and the
pause while a person decides on a proposal (:class:`PendingApproval`).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from rlam_jupyter.actions.proposal import Proposal
from rlam_jupyter.engine.trace import (
    OutputRuns,
    RunsOutput,
    StepResult,
    steps_table_html,
    steps_table_text,
)
from rlam_jupyter.operations.agent.proposers import ProviderError

STOPPED = "stopped (budget)"


@dataclass(frozen=True)
class AgentLimits:
    """Budgets of one agent run."""

    max_steps: int = 20
    """Proposals (step records) the agent may make in this run."""
    max_retries: int = 2
    """Failed or refused retries in a row answering one failure before the run fails."""
    max_run_retries: int = 6
    """Retries over the whole run."""

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.max_retries < 0 or self.max_run_retries < 0:
            raise ValueError("max_steps must be >= 1 and retry budgets >= 0")


@dataclass
class AgentOutcome(RunsOutput):
    """How an agent run ended, why, and what it did. Displays as a table in a notebook."""

    run_id: str
    run_name: str
    status: str
    reason: str
    results: list[StepResult]
    call_ids: list[str]
    messages: list[dict[str, Any]]
    error: ProviderError | None = None
    tokens: tuple[int, int] = (0, 0)

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for result in self.results:
            counts[result.status] = counts.get(result.status, 0) + 1
        steps = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no steps"
        return (
            f"agent run {self.run_name} ({self.run_id}) {self.status}: {self.reason} "
            f"[{steps}; {len(self.call_ids)} proposer call(s), "
            f"{self.tokens[0]} in / {self.tokens[1]} out tokens]"
        )

    def output_runs(self) -> OutputRuns:
        return OutputRuns(self.run_id, (self.run_id,), tuple(r.step_id for r in self.results))

    def __repr__(self) -> str:
        return self.summary() + "\n" + steps_table_text(self.results)

    def _repr_html_(self) -> str:
        colour = "var(--jp-success-color1,#2e7d32)" if self.ok else "var(--jp-error-color1,#d32f2f)"
        return (
            f"<div><b style='color:{colour}'>{html.escape(self.status)}</b> "
            f"{html.escape(self.summary().split(': ', 1)[-1])}</div>"
            + steps_table_html(self.results, f"agent run {self.run_name}")
        )


@dataclass(frozen=True)
class PendingApproval:
    """The loop is paused: a checked proposal waits for a person's decision."""

    proposal: Proposal
    step_seq: int
    call_id: str
