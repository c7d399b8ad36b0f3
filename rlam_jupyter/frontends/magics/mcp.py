"""``%%rlam mcp``: one request of the notebook-attached MCP server, answered in this
kernel. The Jupyter server sends these cells (an MCP client's tool call becomes one);
a person does not type them. The answer is displayed as JSON for the server to read
(:mod:`frontends.mcp.kernel_protocol`); a step is recorded as any step of the notebook.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics
from IPython.display import display

from rlam_jupyter.engine.session import Session
from rlam_jupyter.errors import RlamError
from rlam_jupyter.frontends.magics.commands import command
from rlam_jupyter.frontends.mcp.dispatch import Dispatcher
from rlam_jupyter.frontends.mcp.kernel_answers import answer, dispatcher_for
from rlam_jupyter.frontends.mcp.kernel_protocol import answer_bundle, read_request

_DISPATCHERS: dict[int, Dispatcher] = {}


@command(
    "mcp",
    "Answer one request of the notebook-attached MCP server (sent by Jupyter, not typed).",
    cell=True,
)
def mcp_request(magics: Magics, session: Session, _args: Any, cell: str | None) -> None:
    if cell is None:
        raise UsageError("`mcp` is a cell command sent by the attached MCP server")
    try:
        method, params = read_request(cell)
    except (ValueError, KeyError) as exc:
        raise UsageError(f"%%rlam mcp: the request is not JSON of an MCP request: {exc}") from None
    dispatcher = dispatcher_for(session, _DISPATCHERS)
    try:
        data = answer(dispatcher, method, params, input)
    except RlamError as exc:
        data = {"error": str(exc)}
    display(answer_bundle(data), raw=True)
