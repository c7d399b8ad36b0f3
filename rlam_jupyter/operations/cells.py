"""A ``%%rlam`` cell as a unit: parse its statements, refuse it whole or run it in order.

Every front end that takes a block of statements (the magics today, agents' clients
next) goes through :func:`run_cell`, so a refused cell is recorded the same way
everywhere: each of its statements as a ``rejected`` step, nothing executed.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlam_jupyter.actions.proposal import Proposal, ProposalRejected, parse_cell
from rlam_jupyter.engine import Run
from rlam_jupyter.engine.cell_plan import running_on
from rlam_jupyter.engine.session import Session
from rlam_jupyter.engine.trace import CellInfo, StepResult


@dataclass(frozen=True)
class CellOutcome:
    """The recorded steps of a cell; ``failing`` names the refusal that stopped it whole,
    ``executed`` says whether its steps ran (False when the cell was refused)."""

    results: list[StepResult]
    failing: str | None = None
    executed: bool = True


def run_cell(
    session: Session,
    run: Run,
    body: str,
    cell: CellInfo,
    *,
    executor: str | None = None,
    use_cache: bool = True,
    dry_run: bool = False,
    recovers: str | None = None,
) -> CellOutcome:
    """Parse ``body`` against the session's registry, check every statement, then run them."""
    engine = session.engine
    try:
        proposals = parse_cell(body, engine.registry)
    except ProposalRejected as rejection:
        source = body.splitlines()[rejection.line - 1] if rejection.line else body[:200]
        unparsed = Proposal(
            rejection.action or "<unparsed>",
            source_text=source.strip(),
            line=rejection.line,
            col=rejection.col,
        )
        return CellOutcome([engine.reject(run, unparsed, rejection, cell)], executed=False)
    try:
        engine.precheck(run, proposals)
    except ProposalRejected as rejection:
        results = [engine.reject(run, p, _reason(rejection, p), cell) for p in proposals]
        return CellOutcome(results, failing=rejection.message, executed=False)
    # the executor may start independent steps ahead; recording stays in order
    ahead = [] if dry_run else proposals
    with running_on(engine, executor, run, ahead, use_cache):
        results = session.execute(
            run, proposals, cell=cell, use_cache=use_cache, dry_run=dry_run, recovers=recovers
        )
    return CellOutcome(results)


def _reason(rejection: ProposalRejected, proposal: Proposal) -> ProposalRejected:
    """The refusal recorded for ``proposal`` when one statement of its cell was refused."""
    if proposal.line == rejection.line:
        return rejection
    return ProposalRejected(
        f"not run: line {rejection.line} of this cell was rejected",
        line=proposal.line,
        col=proposal.col,
        action=proposal.action,
    )
