"""How the notebook-attached MCP server and a notebook's kernel talk.

The Jupyter server extension speaks MCP to the client; each request that needs the
notebook (the tool list, a tool call, a resource) runs in the notebook's kernel as the
cell ``%%rlam mcp`` whose body is the request as JSON (:func:`request_cell`). The
kernel's own :class:`Dispatcher` answers it and displays the answer under
:data:`ANSWER_MIME` (:func:`answer_bundle`), which the server reads from the execution's
``display_data``. A step that needs approval asks with ``input()``: the prompt is
:data:`APPROVAL_PROMPT` followed by the proposal as JSON, and the server answers the
``input_request`` with the decision as JSON once the sidebar has it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from rlam_jupyter.policy import Decision

ANSWER_MIME = "application/vnd.rlam.mcp-answer+json"
APPROVAL_PROMPT = "rlam-approval: "
CELL_COMMAND = "%%rlam mcp"


@dataclass(frozen=True)
class ApprovalRequest:
    """What a person needs to judge one proposal, sent from the kernel to the sidebar."""

    run: str
    seq: int
    action: str
    text: str
    signature: str
    params: dict[str, Any]
    inputs: dict[str, str]
    params_schema: dict[str, Any]
    client: str

    def prompt(self) -> str:
        return APPROVAL_PROMPT + json.dumps(asdict(self), default=repr)

    @classmethod
    def from_prompt(cls, prompt: str) -> ApprovalRequest | None:
        """The request in an ``input_request``'s prompt; None for any other prompt."""
        if not prompt.startswith(APPROVAL_PROMPT):
            return None
        return cls(**json.loads(prompt.removeprefix(APPROVAL_PROMPT)))


def request_cell(method: str, params: dict[str, Any]) -> str:
    """The cell the server runs in the kernel for one MCP request."""
    return f"{CELL_COMMAND}\n{json.dumps({'method': method, 'params': params})}"


def read_request(body: str) -> tuple[str, dict[str, Any]]:
    request = json.loads(body)
    return str(request["method"]), dict(request.get("params") or {})


def answer_bundle(answer: Any) -> dict[str, Any]:
    """The display bundle of an answer: JSON for the server, a line for a person."""
    return {ANSWER_MIME: answer, "text/plain": "rlam: answered an MCP request"}


def decision_json(decision: Decision) -> str:
    return json.dumps(asdict(decision))


def decision_from_json(text: str) -> Decision:
    """The sidebar's decision; anything unreadable is a refusal saying so."""
    try:
        data = json.loads(text)
        return Decision(
            bool(data["approved"]),
            str(data.get("reason") or ""),
            data.get("edited_params") or None,
            str(data.get("decided_by") or "sidebar"),
        )
    except (ValueError, KeyError, TypeError):
        return Decision(
            False, f"the approval answer was not understood: {text[:80]!r}", None, "rlam"
        )
