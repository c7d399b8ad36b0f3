"""Approval over MCP: a form the client shows its user (``elicitation/create``) before a
step that needs approval runs.

The form offers approve or reject, a reason, and every scalar parameter as an editable
field holding the proposed value; an edit is checked again by the engine's gate, as a
sidebar or console edit is. A ``python`` cell's code is shown in the message, never
editable: its spec and identity are that code (reject it, with a reason, instead). A client without form elicitation, a declined or cancelled
form, and a form nobody answers within the timeout are all refusals with the reason
said, recorded as ``rejected``: a call never hangs on approval.
"""

from __future__ import annotations

from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError

from rlam_jupyter.actions.proposal import Proposal
from rlam_jupyter.actions.python_cell import ACTION_NAME as PYTHON
from rlam_jupyter.frontends.approval import describe
from rlam_jupyter.policy import Decision

SCALARS: dict[type, str] = {bool: "boolean", int: "integer", float: "number", str: "string"}
FORM = types.ClientCapabilities(
    elicitation=types.ElicitationCapability(form=types.FormElicitationCapability())
)


def can_elicit(ctx: ServerRequestContext[Any]) -> bool:
    """Whether the client said it shows elicitation forms."""
    return ctx.session.check_client_capability(FORM)


def approval_message(where: str, proposal: Proposal) -> str:
    """The line the client shows above the form."""
    return f"rlam: approve {where}: {describe(proposal)} ?"


def approval_form(proposal: Proposal) -> dict[str, Any]:
    """The requested schema: decision, reason, and the scalar parameters to edit."""
    properties: dict[str, Any] = {
        "decision": {
            "type": "string",
            "title": "Decision",
            "enum": ["approve", "reject"],
            "default": "approve",
        },
        "reason": {"type": "string", "title": "Reason (recorded with the decision)"},
    }
    for name, value in editable(proposal).items():
        kind = SCALARS[type(value)]
        properties[name] = {"type": kind, "title": f"parameter {name}", "default": value}
    return {"type": "object", "properties": properties, "required": ["decision"]}


def editable(proposal: Proposal) -> dict[str, Any]:
    """The parameters the form lets the user change: the scalar ones, except a python
    cell's source (the code is the step's identity; it is shown, not edited)."""
    fixed = {"source"} if proposal.action == PYTHON else set()
    return {
        name: value
        for name, value in proposal.params.items()
        if type(value) in SCALARS and name not in fixed
    }


def decision_of(result: types.ElicitResult, proposal: Proposal, client: str) -> Decision:
    """The engine's decision from what the client's user answered."""
    if result.action != "accept" or result.content is None:
        done = {"decline": "declined", "cancel": "cancelled"}.get(result.action, result.action)
        return Decision(False, f"{done} in {client}", decided_by=client)
    content = result.content
    reason = str(content.get("reason") or "").strip()
    if content.get("decision") != "approve":
        return Decision(False, reason or f"rejected in {client}", decided_by=client)
    proposed = editable(proposal)
    edits = {
        name: value
        for name, value in content.items()
        if name in proposed and value != proposed[name]
    }
    return Decision(True, reason or ("edited" if edits else ""), edits or None, decided_by=client)


async def ask(
    ctx: ServerRequestContext[Any],
    proposal: Proposal,
    where: str,
    client: str,
    timeout_s: float,
) -> Decision | None:
    """The client's user's decision on ``proposal``, or None when the client cannot ask
    (the caller then refuses the step, saying how to allow it)."""
    if not can_elicit(ctx):
        return None
    message = approval_message(where, proposal)
    try:
        with anyio.fail_after(timeout_s):
            result = await ctx.session.elicit_form(
                message, approval_form(proposal), related_request_id=ctx.request_id
            )
    except TimeoutError:
        return Decision(
            False,
            f"no decision within {timeout_s:g} s (rlam mcp --approval-timeout)",
            decided_by="rlam",
        )
    except (MCPError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
        return Decision(False, f"the approval form failed in {client}: {exc}", decided_by="rlam")
    return decision_of(result, proposal, client)
