"""Failure Visibility of one run, and its failure report: every failure the trace has
(failed, refused or interrupted steps, LLM call errors, a run that ended badly with
nothing on record), each with whether its cause was recorded."""

from __future__ import annotations

from dataclasses import dataclass

from rlam_jupyter.operations.audit.metrics import Tally
from rlam_jupyter.operations.audit.queries import Row, RunTrace
from rlam_jupyter.operations.audit.run_state import RunState, interrupted
from rlam_jupyter.store.schema import INTERRUPTED, WRITER_DIED


@dataclass(frozen=True)
class Failure:
    """One failure as the trace has it, for the failure report."""

    run_id: str
    seq: int | None
    step_id: str | None
    action: str
    status: str
    error_type: str | None
    message: str | None
    traceback_tail: str | None
    recovered_by: str | None
    visible: bool


def visibility_of(trace: RunTrace, state: RunState) -> tuple[Tally, list[Failure]]:
    visibility = Tally()
    failures: list[Failure] = []
    run_id = trace.run["run_id"]
    answered = {s["recovers"]: s["step_id"] for s in trace.latest.values() if s["recovers"]}
    for step in sorted(trace.latest.values(), key=lambda s: s["seq"] or 0):
        recovered_by = answered.get(step["step_id"])
        if interrupted(step, state.interrupted_run):
            failures.append(_interrupted_step(visibility, run_id, step, recovered_by, state.died))
        elif step["status"] in ("failed", "rejected"):
            failures.append(_failed_step(visibility, run_id, step, recovered_by))
    failures += _llm_call_errors(visibility, run_id, trace.calls)
    if not failures:
        failures += _run_that_ended_badly(visibility, trace.run, state.died)
    return visibility, failures


def _interrupted_step(
    visibility: Tally, run_id: str, step: Row, recovered_by: str | None, died: str
) -> Failure:
    label = f"step {step['seq']} ({step['action']})"
    # The cause is on record (repair's event) or derived from the dead writer's
    # lease: visible, unlike a kernel death before liveness was tracked.
    message = step["error_message"] or died or "its writer died"
    visibility.check(True, f"{label} was interrupted")
    return Failure(
        run_id,
        step["seq"],
        step["step_id"],
        step["action"],
        INTERRUPTED,
        step["error_type"] or WRITER_DIED,
        message,
        None,
        recovered_by,
        True,
    )


def _failed_step(visibility: Tally, run_id: str, step: Row, recovered_by: str | None) -> Failure:
    """A failed step is visible with its type, message and traceback; a refused one with
    its type and message (the reason)."""
    label = f"step {step['seq']} ({step['action']})"
    has_cause = bool(step["error_type"]) and bool((step["error_message"] or "").strip())
    if step["status"] == "failed":
        visible = has_cause and bool((step["traceback"] or "").strip())
        visibility.check(visible, f"{label} failed without its type, message and traceback")
    else:
        visible = has_cause
        visibility.check(visible, f"{label} was refused without a reason")
    tail = (step["traceback"] or "").strip().splitlines()
    return Failure(
        run_id,
        step["seq"],
        step["step_id"],
        step["action"],
        step["status"],
        step["error_type"],
        step["error_message"],
        tail[-1] if tail else None,
        recovered_by,
        visible,
    )


def _llm_call_errors(visibility: Tally, run_id: str, calls: list[Row]) -> list[Failure]:
    failures = []
    for call in calls:
        if call["error"]:
            kind, _, message = str(call["error"]).partition(": ")
            visible = bool(message.strip())
            visibility.check(visible, f"LLM call {call['call_id']} failed without a message")
            failures.append(
                Failure(
                    run_id,
                    None,
                    call["call_id"],
                    "llm call",
                    "error",
                    kind,
                    message,
                    None,
                    None,
                    visible,
                )
            )
    return failures


def _run_that_ended_badly(visibility: Tally, run: Row, died: str) -> list[Failure]:
    """A run with no failure on record that did not end well: interrupted between steps
    (visible: the trace says why it stopped), or ``failed``/``stopped`` (invisible)."""
    run_id = run["run_id"]
    status = run["status"] or "open"
    if status == INTERRUPTED:
        # Killed between steps: nothing was lost, and the trace says why the run stopped.
        visibility.check(True, "the run was interrupted")
        return [
            Failure(run_id, None, None, "run", status, WRITER_DIED, died or None, None, None, True)
        ]
    if status not in ("open", "succeeded"):
        visibility.check(False, f"the run ended {status!r} but no failure is recorded")
        return [Failure(run_id, None, None, "run", status, None, None, None, None, False)]
    return []
