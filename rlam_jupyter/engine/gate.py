"""The gate a proposal passes before it runs: the schema check, the policy, approval.

Nothing here executes or records a step: a proposal the gate refuses comes back as a
:class:`ProposalRejected` (or a :class:`Refusal`) for the engine to record as
``rejected``. The only record the gate writes is the approver's decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rlam_jupyter.actions.proposal import (
    PENDING,
    CheckedProposal,
    Proposal,
    ProposalRejected,
    check,
)
from rlam_jupyter.actions.registry import ActionSpec, Registry
from rlam_jupyter.engine.recorder import record_approval
from rlam_jupyter.engine.run_state import Run
from rlam_jupyter.policy import Approver, Policy
from rlam_jupyter.store.schema import INTERRUPTED


@dataclass(frozen=True)
class Refusal:
    """A proposal the approver refused (as proposed, or as the approver edited it)."""

    proposal: Proposal
    rejection: ProposalRejected


def admit(
    registry: Registry,
    policy: Policy,
    proposal: Proposal,
    bound: Mapping[str, Any],
    spec: ActionSpec | None = None,
) -> CheckedProposal:
    """The proposal checked against its schema and the names ``bound``, if the policy
    lets its action run; raises :class:`ProposalRejected` otherwise."""
    checked = check(proposal, registry, bound, spec)
    refusal = policy.refusal(checked.spec.name)
    if refusal:
        raise ProposalRejected(
            refusal, line=proposal.line, col=proposal.col, action=proposal.action
        )
    return checked


def precheck(
    registry: Registry,
    policy: Policy,
    run: Run,
    proposals: Sequence[Proposal],
    spec: ActionSpec | None = None,
) -> None:
    """Check a whole cell before any of it runs; raises on the first bad proposal.
    ``spec``: the action of a single proposal that is not in the registry."""
    bound: dict[str, Any] = {
        name: b.value if b.loaded else PENDING for name, b in run.bindings.items()
    }
    for proposal in proposals:
        admit(registry, policy, proposal, bound, spec)
        for target in proposal.targets:
            bound[target] = PENDING


def recovery_target(run: Run, ref: str, proposal: Proposal) -> str:
    """The step id of the failed (or rejected) step of ``run`` that ``ref`` names: its
    id, or its number in the run. Raises :class:`ProposalRejected` for any other."""
    step_id = run.step_id_of(int(ref)) if ref.strip().isdigit() else ref.strip()
    entry = None
    if run.index is not None:
        entry = next((e for e in reversed(run.index.steps) if e.step_id == step_id), None)
    if entry is None or entry.status not in ("failed", "rejected", INTERRUPTED):
        failed = [r.step_id for r in run.results if r.status in ("failed", "rejected", INTERRUPTED)]
        what = f"step {step_id} {entry.status}" if entry else f"{ref!r} is not a step of this run"
        hint = (
            f"Failed or rejected steps of run {run.name}: {', '.join(failed[-5:])}."
            if failed
            else f"Run {run.name} has no failed step to recover."
        )
        raise ProposalRejected(
            f"--recover {ref}: {what}; a recovery must answer a failed or rejected step",
            hint=hint,
            line=proposal.line,
            col=proposal.col,
            action=proposal.action,
        )
    return step_id


def ask_approval(
    approver: Approver | None,
    registry: Registry,
    run: Run,
    checked: CheckedProposal,
    bound: Mapping[str, Any],
) -> CheckedProposal | Refusal:
    """The proposal as approved (with the approver's edits, checked again), or why not.
    Without an approver (a non-interactive session) nothing that needs approval runs."""
    proposal = checked.proposal
    if approver is None:
        return Refusal(
            proposal,
            ProposalRejected(
                f"{checked.spec.name} requires approval, but nobody can approve in this "
                "non-interactive session",
                hint="Run the notebook interactively, or approve with a policy "
                "(`%rlam config approval=off`) if you accept the risk.",
                line=proposal.line,
                col=proposal.col,
                action=proposal.action,
            ),
        )
    decision = approver(checked)
    record_approval(run, run.step_id_of(run.next_seq), decision)
    if not decision.approved:
        reason = decision.reason or "no reason given"
        return Refusal(
            proposal,
            ProposalRejected(
                f"rejected by {decision.decided_by}: {reason}",
                line=proposal.line,
                col=proposal.col,
                action=proposal.action,
            ),
        )
    if not decision.edited_params:
        return checked
    edited = Proposal(
        proposal.action,
        {**proposal.params, **decision.edited_params},
        proposal.inputs,
        proposal.targets,
        proposal.origin,
        proposal.line,
        proposal.col,
        proposal.source_text,
    )
    try:
        return check(edited, registry, bound, checked.spec)
    except ProposalRejected as rejection:
        return Refusal(edited, rejection)
