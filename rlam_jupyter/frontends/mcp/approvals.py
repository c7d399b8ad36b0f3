"""An action call that needs approval, in both protocol eras the SDK serves.

With a back-channel (stdio and stateful HTTP sessions of the 2025 revisions) the server
asks the client with an ``elicitation/create`` request while the call waits
(:func:`elicitation.ask`). The stateless revision (2026-07-28) has no back-channel: the
call answers ``input_required`` with the form and a ``requestState`` token, and the
client calls again with the user's answer (multi round-trip requests). Between the two
rounds the call waits here, recorded as a call (its ``llm_calls`` row) but not yet a
step; a call whose answer never comes is recorded as refused once its time is up (at
the next request, or when the server stops), so no proposal is left out of the trace.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext

from rlam_jupyter.actions.proposal import Proposal
from rlam_jupyter.frontends.mcp import elicitation
from rlam_jupyter.frontends.mcp.calls import ActionCalls, Caller, PreparedCall
from rlam_jupyter.frontends.mcp.results import error_answer, step_answer
from rlam_jupyter.policy import Approver, Decision

FORM_KEY = "approval"


@dataclass(frozen=True)
class Waiting:
    """A call waiting for the answer to its form (stateless revision)."""

    prepared: PreparedCall
    proposal: Proposal
    client: str
    deadline: float


@dataclass
class ApprovingCalls:
    """Action calls of a headless server, with approval by the client's user."""

    calls: ActionCalls
    timeout_s: float
    waiting: dict[str, Waiting] = field(default_factory=dict)

    async def call(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams, caller: Caller
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Answer one action call (the caller holds the server's lock)."""
        if params.request_state is not None:
            return self.resume(params)
        self.expire(time.monotonic())
        prepared = self.calls.prepare(params.name, params.arguments, caller)
        proposal = self.calls.awaiting_approval(prepared)
        decision: Decision | None = None
        if proposal is not None:
            where = f"step {prepared.run.next_seq} of run {prepared.run.name}"
            if elicitation.can_elicit(ctx) and not ctx.session.can_send_request:
                return self.ask_later(prepared, proposal, where, caller.name)
            decision = await elicitation.ask(ctx, proposal, where, caller.name, self.timeout_s)
        return self.finish(prepared, decision)

    def finish(self, prepared: PreparedCall, decision: Decision | None) -> types.CallToolResult:
        approver = None if decision is None else decided(decision)
        result, proposal = self.calls.finish(prepared, approver)
        return step_answer(result, proposal)

    def ask_later(
        self, prepared: PreparedCall, proposal: Proposal, where: str, client: str
    ) -> types.InputRequiredResult:
        token = secrets.token_urlsafe(24)
        deadline = time.monotonic() + self.timeout_s
        self.waiting[token] = Waiting(prepared, proposal, client, deadline)
        form = types.ElicitRequestFormParams(
            message=elicitation.approval_message(where, proposal),
            requested_schema=elicitation.approval_form(proposal),
        )
        return types.InputRequiredResult(
            input_requests={FORM_KEY: types.ElicitRequest(params=form)}, request_state=token
        )

    def resume(self, params: types.CallToolRequestParams) -> types.CallToolResult:
        """The second round: the form's answer decides the waiting call."""
        waiting = self.waiting.pop(str(params.request_state), None)
        if waiting is None or waiting.prepared.tool_call.name != params.name:
            return error_answer(
                f"{params.name}: this approval is unknown or already decided (the form "
                "expired, or the server restarted); call the tool again"
            )
        response = (params.input_responses or {}).get(FORM_KEY)
        if waiting.deadline <= time.monotonic():
            decision = self.timed_out()
        elif not isinstance(response, types.ElicitResult):
            decision = Decision(
                False, f"{waiting.client} sent no answer to the form", decided_by="rlam"
            )
        else:
            decision = elicitation.decision_of(response, waiting.proposal, waiting.client)
        return self.finish(waiting.prepared, decision)

    def expire(self, now: float) -> None:
        """Record as refused every waiting call whose time is up."""
        for token, waiting in list(self.waiting.items()):
            if waiting.deadline <= now:
                del self.waiting[token]
                self.finish(waiting.prepared, self.timed_out())

    def timed_out(self) -> Decision:
        reason = f"no decision within {self.timeout_s:g} s (rlam mcp --approval-timeout)"
        return Decision(False, reason, decided_by="rlam")

    def close(self) -> None:
        """Record as refused every call still waiting when the server stops."""
        for waiting in self.waiting.values():
            reason = "the server stopped before the form was answered"
            self.finish(waiting.prepared, Decision(False, reason, decided_by="rlam"))
        self.waiting.clear()


def decided(decision: Decision) -> Approver:
    """An approver giving the decision already taken (the form is answered before the
    engine's gate asks, since the gate runs synchronously)."""
    return lambda _checked: decision
