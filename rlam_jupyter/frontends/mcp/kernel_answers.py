"""The kernel's side of the notebook-attached MCP server: one request, answered by the
kernel session's own :class:`Dispatcher` (so the notebook's own actions are tools, and
outputs land in the notebook's namespace and its current run).

A step that needs approval is put to the sidebar through the kernel's stdin
(:class:`InputApprover`): the kernel waits in ``input()`` while the person decides,
exactly as a console approval waits, and the server answers with the decision.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rlam_jupyter.actions.proposal import CheckedProposal
from rlam_jupyter.engine.engine import Engine
from rlam_jupyter.engine.session import Session
from rlam_jupyter.errors import RlamError
from rlam_jupyter.frontends.approval import describe
from rlam_jupyter.frontends.mcp.calls import ActionCalls, Caller
from rlam_jupyter.frontends.mcp.dispatch import Dispatcher
from rlam_jupyter.frontends.mcp.kernel_protocol import ApprovalRequest, decision_from_json
from rlam_jupyter.policy import APPROVAL_MODES, Decision, Policy

NO_SIDEBAR = (
    "this step needs approval, and nobody can approve it: the kernel was asked without "
    "a way to answer (stdin); approve it from the notebook's rlam sidebar, or start "
    "Jupyter with RlamMCP approve='none' if you accept the risk"
)


@dataclasses.dataclass
class InputApprover:
    """Asks for a decision with ``input()``; the attached server answers the prompt."""

    ask: Callable[[str], str]
    client: str
    calls: ActionCalls

    def __call__(self, checked: CheckedProposal) -> Decision:
        proposal, spec = checked.proposal, checked.spec
        run = self.calls.run()
        request = ApprovalRequest(
            run=run.name,
            seq=run.next_seq,
            action=spec.name,
            text=describe(proposal),
            signature=spec.signature(),
            params=dict(proposal.params),
            inputs=dict(proposal.inputs),
            params_schema=spec.params_schema(),
            client=self.client,
        )
        try:
            return decision_from_json(self.ask(request.prompt()))
        except (EOFError, OSError, RuntimeError) as exc:
            return Decision(False, f"{NO_SIDEBAR} ({type(exc).__name__})", decided_by="rlam")


def dispatcher_for(session: Session, kept: dict[int, Dispatcher]) -> Dispatcher:
    """The dispatcher of ``session``, made once per session (its calls' numbering and
    recovery links continue across requests)."""
    found = kept.get(id(session))
    if found is None or found.session is not session:
        calls = ActionCalls(session, no_approver=NO_SIDEBAR)
        found = kept[id(session)] = Dispatcher(calls)
    return found


@contextmanager
def approving(engine: Engine, mode: str) -> Iterator[None]:
    """The engine's policy with the attached server's ``--approve`` mode, for one call."""
    if mode not in APPROVAL_MODES:
        raise RlamError(f"approve must be one of {', '.join(APPROVAL_MODES)}, got {mode!r}")
    saved = engine.policy
    asked = Policy.approving(mode)
    engine.policy = dataclasses.replace(
        saved,
        require_approval=saved.require_approval or asked.require_approval,
        approve_effects=saved.approve_effects or asked.approve_effects,
    )
    try:
        yield
    finally:
        engine.policy = saved


def answer(
    dispatcher: Dispatcher, method: str, params: dict[str, Any], ask: Callable[[str], str]
) -> Any:
    """The JSON answer of one MCP request, as the SDK's result types dump it."""
    if method == "tools/list":
        return [dump(tool) for tool in dispatcher.tools()]
    if method == "tools/call":
        caller = Caller(**params["caller"])
        approver = InputApprover(ask, caller.name, dispatcher.calls)
        with approving(dispatcher.session.engine, str(params.get("approve", "none"))):
            result = dispatcher.call(params["name"], params.get("arguments"), caller, approver)
        return dump(result)
    if method == "resources/list":
        return [dump(resource) for resource in dispatcher.resources()]
    if method == "resources/templates/list":
        return [dump(template) for template in dispatcher.resource_templates()]
    if method == "resources/read":
        return dump(dispatcher.read_resource(str(params["uri"])))
    raise RlamError(f"the kernel does not answer the MCP method {method!r}")


def dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)
