"""Trace Completeness of one run: of everything the trace implies must be there, item by
item, what is (see the package docstring for the list of items)."""

from __future__ import annotations

import json
from collections import Counter

from rlam_jupyter.operations.audit.metrics import Tally
from rlam_jupyter.operations.audit.queries import Row, RunTrace
from rlam_jupyter.operations.audit.run_state import RunState, interrupted
from rlam_jupyter.store.schema import INTERRUPTED, USER_INTERRUPT


def completeness_of(trace: RunTrace, state: RunState) -> Tally:
    tally = Tally()
    _check_step_numbers(tally, trace)
    for step_id, evs in sorted(trace.by_step.items()):
        last = evs[-1]
        label = f"step {last['seq']} ({last['action']})"
        _check_proposal_and_decision(tally, label, evs)
        _check_outcome(tally, label, evs, state)
        if last["status"] in ("succeeded", "cached"):
            _check_lineage(tally, label, step_id, last, trace)
        if last["recovers"]:
            _check_recovery(tally, label, step_id, last, trace)
        proposer = _proposer(evs)
        if proposer:
            _check_proposer(tally, label, step_id, proposer, trace)
    _check_tool_calls(tally, trace)
    _check_approvals(tally, trace)
    return tally


def _check_step_numbers(tally: Tally, trace: RunTrace) -> None:
    """Step numbers run without a gap from the first of the run (after a fork's) on."""
    first = trace.run["fork_seq"] or 1
    seqs = sorted({e["seq"] for e in trace.events if e["seq"] is not None})
    if seqs:
        present = set(seqs)
        for seq in range(first, seqs[-1] + 1):
            tally.check(seq in present, f"step {seq}: no record at all (a gap in the step numbers)")


def _check_proposal_and_decision(tally: Tally, label: str, evs: list[Row]) -> None:
    statuses = {e["status"] for e in evs}
    tally.check(
        any(e["action"] and e["params"] is not None for e in evs),
        f"{label}: the proposal (action and parameters) is not recorded",
    )
    decided = bool(statuses & {"accepted", "rejected"})
    tally.check(decided, f"{label}: no decision (accepted/rejected) is recorded")


def _check_outcome(tally: Tally, label: str, evs: list[Row], state: RunState) -> None:
    """An accepted step has its outcome; one in flight is not counted while its writer is
    seen working, and is counted as not checked while its writer's fate is unknown."""
    last = evs[-1]
    statuses = {e["status"] for e in evs}
    if not ("accepted" in statuses or statuses & {"succeeded", "cached", "failed", INTERRUPTED}):
        return
    # an interrupt the step's own writer recorded is an outcome; a dead writer's is not
    done = bool(statuses & {"succeeded", "cached", "failed"}) or (
        last["status"] == INTERRUPTED and last["error_type"] == USER_INTERRUPT
    )
    if not done and state.fate_unknown:
        who = "; ".join(state.not_alive) or "no journal names its writer"
        tally.skip(
            f"{label}: in flight, its writer's fate unknown ({who}): whether it "
            "finished cannot be known from here"
        )
        return
    if not done and state.open_run:
        return  # in flight under a writer seen working: it may still finish
    if interrupted(last, state.interrupted_run):
        cause = last["error_message"] or state.died or "its writer died"
        missing = f"{label}: interrupted (writer died) before an outcome was recorded: {cause}"
    else:
        missing = f"{label}: accepted, but no outcome (succeeded/failed) is recorded"
    tally.check(done, missing)


def _check_lineage(tally: Tally, label: str, step_id: str, last: Row, trace: RunTrace) -> None:
    """A step that produced its outputs: each has its artifact and ``generated`` edge,
    each input its ``used`` edge."""
    for output, artifact_id in json.loads(last["outputs"] or "{}").items():
        tally.check(
            (step_id, artifact_id, "generated") in trace.edges,
            f"{label}: output {output} has no 'generated' edge",
        )
        tally.check(
            artifact_id in trace.known_artifacts,
            f"{label}: output {output} ({artifact_id[:10]}) has no artifact record",
        )
    for pname, artifact_id in json.loads(last["inputs"] or "{}").items():
        tally.check(
            (step_id, artifact_id, "used") in trace.edges,
            f"{label}: input {pname} has no 'used' edge",
        )


def _check_recovery(tally: Tally, label: str, step_id: str, last: Row, trace: RunTrace) -> None:
    target = trace.latest.get(last["recovers"])
    tally.check(
        target is not None and target["status"] in ("failed", "rejected", INTERRUPTED),
        f"{label}: recovers {last['recovers']}, which is not a recorded failure",
    )
    tally.check(
        (step_id, last["recovers"], "recovers") in trace.edges,
        f"{label}: its 'recovers' edge is missing",
    )


def _proposer(evs: list[Row]) -> str | None:
    """The LLM call that proposed the step, if an agent did."""
    proposer: str | None = next((e["proposed_by"] for e in evs if e["proposed_by"]), None)
    return proposer


def _check_proposer(tally: Tally, label: str, step_id: str, proposer: str, trace: RunTrace) -> None:
    tally.check(
        proposer in {c["call_id"] for c in trace.calls},
        f"{label}: the LLM call {proposer} that proposed it is not recorded",
    )
    tally.check(
        (step_id, proposer, "proposed_by") in trace.edges,
        f"{label}: its 'proposed_by' edge is missing",
    )


def _check_tool_calls(tally: Tally, trace: RunTrace) -> None:
    """An LLM call has as many steps as it made tool calls."""
    proposed = Counter(proposer for evs in trace.by_step.values() if (proposer := _proposer(evs)))
    for call in trace.calls:
        attributes = json.loads(call["attributes"] or "{}")
        asked = len(attributes.get("rlam.tool_call_ids") or [])
        if asked:
            got = proposed.get(call["call_id"], 0)
            tally.check(
                got >= asked,
                f"LLM call {call['call_id']} made {asked} tool call(s) but only {got} step(s) "
                "record them",
            )


def _check_approvals(tally: Tally, trace: RunTrace) -> None:
    for approval in trace.approvals:
        tally.check(
            approval["step_id"] in trace.latest,
            f"approval ({approval['decision']}) of {approval['step_id']}, a step with no record",
        )
