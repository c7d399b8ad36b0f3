"""One MCP tool call of an action, as a proposal: recorded, checked, run, answered.

The path is the LLM agent's (:mod:`operations.agent.loop`): the call is recorded first
(an ``llm_calls`` row, provider ``mcp``: the client's name and version, the JSON-RPC
request id, the arguments as received and their hash), then turned into a
:class:`Proposal` by the agent's own :func:`to_proposal` (origin ``mcp``), then the
engine's gate (schema check, policy, approval) and the engine; the step links to its
call by ``proposed_by``. A call that cannot become a proposal (unknown tool, an input
that is not a name, bad output names) is recorded as a ``rejected`` step all the same.
The next call after a failure or a refusal is recorded as its recovery, as the agent's is.
A ``python`` call is read by :mod:`.python_tool` instead (only with ``allow_python``; it
carries its own spec, which always needs approval).

Arguments that are not a JSON object, or whose JSON exceeds :data:`MAX_ARGUMENT_BYTES`,
are refused the same way before any check reads them; an oversized call is recorded by
its size and hash, not its content, so one call cannot bloat the trace.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from rlam_jupyter.actions.proposal import CheckedProposal, Proposal, ProposalRejected
from rlam_jupyter.actions.python_cell import ACTION_NAME as PYTHON
from rlam_jupyter.actions.registry import ActionSpec
from rlam_jupyter.engine.gate import precheck
from rlam_jupyter.engine.run_state import Run
from rlam_jupyter.engine.session import Session
from rlam_jupyter.engine.trace import StepResult
from rlam_jupyter.frontends.mcp.python_tool import FLAG, not_offered, python_call
from rlam_jupyter.operations.agent.recording import CallOutcome, record_call
from rlam_jupyter.operations.agent.tools import ToolCall, to_proposal, unparsed
from rlam_jupyter.policy import Approver, Decision
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


@dataclass(frozen=True)
class PreparedCall:
    """A call recorded and read: its proposal, or the rejection it will be recorded as."""

    run: Run
    call_id: str
    tool_call: ToolCall
    proposal: Proposal | None
    rejection: ProposalRejected | None
    spec: ActionSpec | None = None
    """The action of a proposal that is not in the registry (a ``python`` cell)."""


@dataclass
class ActionCalls:
    """The action calls of one server: its session's run, numbered and recorded."""

    session: Session
    run_name: str | None = None
    seed: int | None = None
    allow_python: bool = False
    """Whether ``python`` is a tool (``rlam mcp --allow-python``)."""
    turns: dict[str, int] = field(default_factory=dict)
    """Run id → how many calls it has had (the ``turn`` of its ``llm_calls`` rows)."""
    failure: str | None = None
    """Step id of the latest failure or refusal not yet answered by a success."""
    no_approver: str = (
        "this step needs approval, and nobody can approve it here: the MCP client offers "
        "no elicitation; restart rlam mcp with --approve none (if you accept the risk), or "
        "use the notebook-attached server (/rlam/mcp), where the sidebar approves"
    )
    """Why a step that needs approval is refused when nobody can give it."""
    no_python_approver: str = (
        f"every python call needs approval ({FLAG}), and nobody can give it here: the MCP "
        "client offers no elicitation; use a client that shows elicitation forms, or the "
        "notebook-attached server (/rlam/mcp), where the sidebar approves"
    )

    def run(self) -> Run:
        """The run calls go to: started by the first call, kept until the server ends."""
        return self.session.run_for(self.run_name, self.seed)

    def call(
        self, tool: str, arguments: Any, caller: Caller, approver: Approver | None = None
    ) -> tuple[StepResult, Proposal | None]:
        """Record, check and run one call; never raises for a refusal or a failure.
        Returns the step and its proposal (None: the call was not one). ``approver``
        decides a step that needs approval (None: nobody can, so it is refused)."""
        return self.finish(self.prepare(tool, arguments, caller), approver)

    def prepare(self, tool: str, arguments: Any, caller: Caller) -> PreparedCall:
        """The call recorded (its ``llm_calls`` row) and read as a proposal, or why it
        cannot be one; nothing is checked against the run or executed yet."""
        run = self.run()
        encoded = json.dumps(arguments if arguments is not None else {}, default=repr)
        size = len(encoded.encode())
        problem = argument_problem(tool, arguments, size)
        recorded = arguments if size <= MAX_ARGUMENT_BYTES else omitted(encoded)
        call_id = self._record(run, tool, recorded, caller)
        tool_call = ToolCall(caller.request_id or call_id, tool, encoded)
        spec: ActionSpec | None = None
        try:
            if problem is not None:
                raise ProposalRejected(problem, action=tool)
            if tool == PYTHON and not self.allow_python:
                raise not_offered(tool)
            if tool == PYTHON:
                proposal, spec = python_call(arguments)
            else:
                proposal = to_proposal(tool_call, self.session.engine.registry, origin=ORIGIN)
        except ProposalRejected as rejection:
            return PreparedCall(run, call_id, tool_call, None, rejection)
        return PreparedCall(run, call_id, tool_call, proposal, None, spec)

    def awaiting_approval(self, prepared: PreparedCall) -> Proposal | None:
        """The proposal of ``prepared`` if a person must decide it before it runs: it
        passes the schema check and the policy, and the policy asks for approval."""
        engine, proposal = self.session.engine, prepared.proposal
        if proposal is None or prepared.run is not self.run():
            return None
        spec = prepared.spec or engine.registry.get(proposal.action)
        if spec is None or not engine.policy.needs_approval(spec):
            return None
        try:
            precheck(engine.registry, engine.policy, prepared.run, [proposal], prepared.spec)
        except ProposalRejected:
            return None  # refused anyway: the engine records why, nobody needs to decide
        return proposal

    def finish(
        self, prepared: PreparedCall, approver: Approver | None = None
    ) -> tuple[StepResult, Proposal | None]:
        """Run (or record the refusal of) a prepared call; the next call after a failure
        or a refusal is recorded as its recovery."""
        engine, run, proposal = self.session.engine, prepared.run, prepared.proposal
        if proposal is None:
            assert prepared.rejection is not None
            result = engine.reject(
                run,
                unparsed(prepared.tool_call, ORIGIN),
                prepared.rejection,
                proposed_by=prepared.call_id,
            )
        else:
            result = engine.execute(
                run,
                proposal,
                recovers=self.failure,
                proposed_by=prepared.call_id,
                spec=prepared.spec,
                approver=approver or self.nobody,
            )
            self.session.bind(run, proposal)
        self.failure = None if result.ok else result.step_id
        return result, proposal

    def nobody(self, checked: CheckedProposal) -> Decision:
        """The decision where no one can approve: a refusal saying how to allow it."""
        why = self.no_python_approver if checked.spec.name == PYTHON else self.no_approver
        return Decision(False, why, decided_by="rlam")

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
