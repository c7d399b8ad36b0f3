"""One MCP tool call of an action, as a proposal: recorded, checked, run, answered.

The path is the LLM agent's (:mod:`operations.agent.loop`): the call is recorded first
(an ``llm_calls`` row, provider ``mcp``: the client's name and version, the JSON-RPC
request id, the arguments as received and their hash), then turned into a
:class:`Proposal` by the agent's own :func:`to_proposal` (origin ``mcp``), then the
engine's gate (schema check, policy, approval) and the engine; the step links to its
call by ``proposed_by``. A call that cannot become a proposal (unknown tool, an input
that is not a name, bad output names) is recorded as a ``rejected`` step all the same.
The next call after a failure or a refusal is recorded as its recovery, as the agent's is.

Arguments that are not a JSON object, or whose JSON exceeds :data:`MAX_ARGUMENT_BYTES`,
are refused the same way before any check reads them; an oversized call is recorded by
its size and hash, not its content, so one call cannot bloat the trace.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from rlam_jupyter.actions.proposal import Proposal, ProposalRejected
from rlam_jupyter.engine.run_state import Run
from rlam_jupyter.engine.session import Session
from rlam_jupyter.engine.trace import StepResult
from rlam_jupyter.operations.agent.recording import CallOutcome, record_call
from rlam_jupyter.operations.agent.tools import ToolCall, to_proposal, unparsed
from rlam_jupyter.store.journal import now_us
from rlam_jupyter.values.digest import digest_bytes

ORIGIN = "mcp"
PROVIDER = "mcp"
MAX_ARGUMENT_BYTES = 1_000_000
"""The largest arguments (as JSON) a call may carry: parameters are small; data is an
artifact made by an action, passed by name."""


@dataclass(frozen=True)
class Caller:
    """Who sent a call: the client as it introduced itself, and the request's id."""

    name: str
    version: str | None
    request_id: str | None
    protocol_version: str | None = None


@dataclass
class ActionCalls:
    """The action calls of one server: its session's run, numbered and recorded."""

    session: Session
    run_name: str | None = None
    seed: int | None = None
    turns: dict[str, int] = field(default_factory=dict)
    """Run id → how many calls it has had (the ``turn`` of its ``llm_calls`` rows)."""
    failure: str | None = None
    """Step id of the latest failure or refusal not yet answered by a success."""

    def run(self) -> Run:
        """The run calls go to: started by the first call, kept until the server ends."""
        return self.session.run_for(self.run_name, self.seed)

    def call(self, tool: str, arguments: Any, caller: Caller) -> tuple[StepResult, Proposal | None]:
        """Record, check and run one call; never raises for a refusal or a failure.
        Returns the step and its proposal (None: the call was not one)."""
        run = self.run()
        encoded = json.dumps(arguments if arguments is not None else {}, default=repr)
        size = len(encoded.encode())
        problem = argument_problem(tool, arguments, size)
        recorded = arguments if size <= MAX_ARGUMENT_BYTES else omitted(encoded)
        call_id = self._record(run, tool, recorded, caller)
        tool_call = ToolCall(caller.request_id or call_id, tool, encoded)
        engine = self.session.engine
        proposal: Proposal | None = None
        try:
            if problem is not None:
                raise ProposalRejected(problem, action=tool)
            proposal = to_proposal(tool_call, engine.registry, origin=ORIGIN)
        except ProposalRejected as rejection:
            result = engine.reject(run, unparsed(tool_call, ORIGIN), rejection, proposed_by=call_id)
        else:
            result = engine.execute(run, proposal, recovers=self.failure, proposed_by=call_id)
            self.session.bind(run, proposal)
        self.failure = None if result.ok else result.step_id
        return result, proposal

    def _record(self, run: Run, tool: str, arguments: Any, caller: Caller) -> str:
        turn = self.turns.get(run.run_id, 0) + 1
        self.turns[run.run_id] = turn
        call_id = f"{run.run_id}-mcp{turn:04d}"
        record_call(
            run,
            call_id,
            turn,
            provider=PROVIDER,
            base_url=None,
            model=caller.name,
            request={"method": "tools/call", "params": {"name": tool, "arguments": arguments}},
            outcome=CallOutcome(None, started_us=now_us()),
            record_content=True,
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": tool,
                "mcp.method.name": "tools/call",
                "mcp.protocol.version": caller.protocol_version,
                "mcp.client.name": caller.name,
                "mcp.client.version": caller.version,
                "jsonrpc.request.id": caller.request_id,
                "rlam.tool_call_ids": [caller.request_id or call_id],
            },
        )
        return call_id


def argument_problem(tool: str, arguments: Any, size: int) -> str | None:
    """Why these arguments cannot be read as a call at all, or None."""
    if arguments is not None and not isinstance(arguments, dict):
        return (
            f"{tool}: the arguments of a tool call must be a JSON object of named "
            f"arguments, got a JSON {type(arguments).__name__}"
        )
    if size > MAX_ARGUMENT_BYTES:
        return (
            f"{tool}: the arguments are {size / 1e6:.1f} MB of JSON; a call may carry at most "
            f"{MAX_ARGUMENT_BYTES / 1e6:.1f} MB (pass data as an artifact: load it with an "
            "action and give its output's name)"
        )
    return None


def omitted(encoded: str) -> dict[str, Any]:
    """What the trace keeps of oversized arguments: their size and content hash."""
    data = encoded.encode()
    return {"rlam.arguments_omitted": {"bytes": len(data), "hash": digest_bytes("mcp-args", data)}}
