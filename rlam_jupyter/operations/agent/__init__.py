"""Agent mediation: an LLM (or a script) proposes steps; the engine decides what runs.

- :class:`ScriptedProposer` — a deterministic, offline list of steps and recovery rules.
- :class:`OpenAIProposer` — any OpenAI-compatible chat-completions endpoint.
- :func:`run_agent` / :class:`AgentLoop` — the failure-aware loop; every proposal is
  schema-checked and recorded, every call to the proposer is recorded in ``llm_calls``.
- :func:`fork_agent` — branch an agent run and re-ask the agent from that step on.
- ``%%rlam agent`` (``rlam_jupyter.frontends.magics.agent``) — the notebook entry point.
"""

from __future__ import annotations

from rlam_jupyter.engine import Engine
from rlam_jupyter.operations.agent.fork import fork_agent
from rlam_jupyter.operations.agent.loop import AgentLimits, AgentLoop, AgentOutcome, PendingApproval
from rlam_jupyter.operations.agent.openai_provider import OpenAIProposer
from rlam_jupyter.operations.agent.proposers import Proposer, ProviderError
from rlam_jupyter.operations.agent.scripted import ScriptedProposer
from rlam_jupyter.operations.agent.tools import (
    OUTPUTS_ARG,
    Reply,
    ToolCall,
    agent_tools,
    to_proposal,
)
from rlam_jupyter.policy import Approver
from rlam_jupyter.store.resolve import StoreRef


def run_agent(
    task: str,
    proposer: Proposer,
    *,
    store: StoreRef = None,
    engine: Engine | None = None,
    name: str | None = None,
    seed: int = 0,
    limits: AgentLimits | None = None,
    record_content: bool = True,
    approve: bool = False,
    approver: Approver | None = None,
) -> AgentOutcome:
    """Run one agent task in a new run and return how it ended (never raises for a
    refused or failed step, nor for an unreachable endpoint: see ``outcome.error``).

    With ``approve=True`` (or actions declared ``requires_approval``) each proposal is
    put to ``approver``; without one it is refused with a message, so unattended runs
    never hang.
    """
    engine = engine if engine is not None else Engine(store)
    run = engine.start_run(name or "agent", seed)
    loop = AgentLoop(
        engine,
        run,
        proposer,
        task=task,
        limits=limits,
        record_content=record_content,
        approve=approve,
        approver=approver,
    )
    outcome = loop.run()
    assert isinstance(outcome, AgentOutcome)  # synchronous approval never pauses
    return outcome


__all__ = [
    "OUTPUTS_ARG",
    "AgentLimits",
    "AgentLoop",
    "AgentOutcome",
    "OpenAIProposer",
    "PendingApproval",
    "Proposer",
    "ProviderError",
    "Reply",
    "ScriptedProposer",
    "ToolCall",
    "agent_tools",
    "fork_agent",
    "run_agent",
    "to_proposal",
]
