"""Forking an agent run: share the steps before ``at``, then re-ask the agent from there.

The agent gets the conversation exactly as it was recorded when it proposed step
``at`` (the request of that step's LLM call), so it is asked only from the fork point
on; the steps before are shared with the parent by reference and never re-run, and
no earlier LLM call is repeated. With ``params`` and no proposer, the fork takes the
user's overrides instead (:func:`rlam_jupyter.operations.replay.fork`: no LLM at all).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from rlam_jupyter.actions.proposal import Proposal
from rlam_jupyter.engine import Engine, Run
from rlam_jupyter.engine.trace import StepResult
from rlam_jupyter.errors import RlamError
from rlam_jupyter.operations.agent.loop import AgentLimits, AgentLoop, AgentOutcome
from rlam_jupyter.operations.agent.proposers import Proposer
from rlam_jupyter.operations.replay import fork, open_lineage, start_fork_run
from rlam_jupyter.policy import Approver
from rlam_jupyter.store.catalog import Connection
from rlam_jupyter.store.index.lineage import Lineage
from rlam_jupyter.store.resolve import StoreRef


def fork_agent(
    run: str,
    at: int,
    proposer: Proposer | None = None,
    params: Mapping[str, Any] | None = None,
    *,
    store: StoreRef = None,
    engine: Engine | None = None,
    name: str | None = None,
    limits: AgentLimits | None = None,
    record_content: bool = True,
    approve: bool = False,
    approver: Approver | None = None,
    on_result: Callable[[Proposal, StepResult], None] | None = None,
    notebook: str | None = None,
) -> Any:
    """Branch agent run ``run`` at step ``at``.

    With a ``proposer``: a new run re-asks it from step ``at`` on, continuing the
    recorded conversation; returns the :class:`AgentOutcome`. With ``params`` only:
    the user's overrides, through :func:`rlam_jupyter.operations.replay.fork` (its ``ForkReport``).
    ``notebook``: the notebook whose kernel forks (recorded with the run, so the
    notebook's bundle holds it).
    """
    if proposer is None:
        if params is None:
            raise RlamError(
                "fork_agent needs a proposer to re-ask, or params to override step "
                f"{at} (e.g. params={{'C': 0.1}})"
            )
        return fork(run, at, params, store=store, engine=engine)
    engine = engine if engine is not None else Engine(store)
    new_run, messages = _start_fork(engine, run, int(at), name, notebook)
    loop = AgentLoop(
        engine,
        new_run,
        proposer,
        messages=messages,
        limits=limits,
        record_content=record_content,
        approve=approve,
        approver=approver,
        on_result=on_result,
    )
    outcome = loop.run()
    assert isinstance(outcome, AgentOutcome)  # synchronous approval never pauses
    return outcome


def _start_fork(
    engine: Engine, ref: str, seq: int, name: str | None, notebook: str | None
) -> tuple[Run, list[Any]]:
    """Open the fork run (names before ``seq`` bound lazily) and read the conversation."""
    with open_lineage(engine, ref) as (lineage, con):
        messages = _conversation_before(con, lineage, lineage.run.run_id, seq)
    run = start_fork_run(
        engine, lineage, seq, name or f"{lineage.run.name}-fork{seq}-agent", notebook=notebook
    )
    return run, messages


def _conversation_before(con: Connection, lineage: Lineage, parent_id: str, seq: int) -> list[Any]:
    found = lineage.step(seq)
    if found is None:
        raise RlamError(f"run {lineage.run.name} has no step {seq}")
    _owner, entry = found
    row = con.execute(
        "SELECT proposed_by FROM step_events WHERE step_id = ? AND proposed_by IS NOT NULL LIMIT 1",
        [entry.step_id],
    ).fetchone()
    if row is None:
        raise RlamError(
            f"step {seq} of run {lineage.run.name} was not proposed by an agent; fork it with "
            "overrides instead (rlam_jupyter.fork or %rlam fork)"
        )
    call = con.execute(
        "SELECT request FROM llm_calls WHERE call_id = ? LIMIT 1", [row[0]]
    ).fetchone()
    if call is None or call[0] is None:
        raise RlamError(
            f"the conversation before step {seq} was recorded without content (--no-content), "
            "so the agent cannot be re-asked from there; fork with overrides instead"
        )
    request = json.loads(call[0])
    messages = request.get("messages")
    if not isinstance(messages, list):
        raise RlamError(f"the recorded request of {row[0]} holds no conversation")
    return messages
