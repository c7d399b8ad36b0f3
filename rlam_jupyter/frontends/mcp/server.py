"""``rlam mcp``: the registry as an MCP server over stdio, on the official SDK's low-level
server (tools are built from the registry at run time, so no decorated functions).

The server owns one :class:`Session` (its engine, its runs, its namespace), through its
:class:`Dispatcher`: artifacts persist across calls as in a kernel. Calls are
serialised: every call runs under one lock, on the event loop's own thread — the main
thread, where the policy's timeouts (SIGALRM) work — so two calls never interleave a
step's records or the namespace. A step that needs approval (``--approve``) is put to
the client's user as an elicitation form (:mod:`.approvals`). Resources are read without
the lock: a read is synchronous on the same thread, so it never sees half a step, and
it need not wait for a call that waits for its approval.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from rlam_jupyter.actions.python_cell import ACTION_NAME as PYTHON
from rlam_jupyter.actions.registry import Registry
from rlam_jupyter.errors import RlamError
from rlam_jupyter.frontends.mcp.approvals import ApprovingCalls
from rlam_jupyter.frontends.mcp.calls import Caller
from rlam_jupyter.frontends.mcp.dispatch import Dispatcher
from rlam_jupyter.frontends.mcp.python_tool import FLAG
from rlam_jupyter.frontends.mcp.run_operations import OPERATION_TOOLS
from rlam_jupyter.frontends.mcp.run_tools import RUN_TOOLS
from rlam_jupyter.version import __version__

SERVER_NAME = "rlam-jupyter"
APPROVAL_TIMEOUT_S = 600.0
"""How long a step waits for its approval before it is refused (and recorded so)."""
INSTRUCTIONS = (
    "Every tool but the rlam_* ones (and python, where offered: reviewed code, run after "
    "the user approves it) is an action of the R-LAM registry: a call is a "
    "proposal, schema-checked, run deterministically (seeded, cached) and recorded in a "
    "provenance trace. Artifact inputs are the names of earlier outputs; name outputs "
    "with _outputs. rlam_runs, rlam_steps and rlam_step read the trace; rlam_replay "
    "verifies a run, rlam_fork branches one, rlam_diff compares two, rlam_audit scores them, "
    "rlam_export writes them as a provenance bundle. "
    "The resources rlam://runs, rlam://runs/{run} and rlam://steps/{step_id} read the trace."
)


def caller_of(ctx: ServerRequestContext[Any]) -> Caller:
    """The client as it introduced itself (initialize, or the request envelope)."""
    params = ctx.session.client_params
    info = params.client_info if params is not None else None
    return Caller(
        name=info.name if info is not None else "unknown MCP client",
        version=info.version if info is not None else None,
        request_id=None if ctx.request_id is None else str(ctx.request_id),
        protocol_version=ctx.protocol_version,
    )


def check_tool_names(registry: Registry, allow_python: bool = False) -> None:
    """Refuse to serve an action whose name is a run tool's (or ``python``'s, when that
    is a tool): the client could reach only one of them, and a renamed tool would no
    longer match the action in the trace."""
    if allow_python and PYTHON in registry:
        spec = registry[PYTHON]
        raise RlamError(
            f"the action {PYTHON!r} ({spec.func.__module__}.{spec.func.__qualname__}) has the "
            f"name of the escape hatch {FLAG} offers; rename the action (@action(name=...)) "
            f"or serve without {FLAG}"
        )
    for name in sorted(set(registry) & (set(RUN_TOOLS) | set(OPERATION_TOOLS))):
        spec = registry[name]
        raise RlamError(
            f"the action {name!r} ({spec.func.__module__}.{spec.func.__qualname__}) has "
            f"the name of the run tool {name!r} of rlam mcp; rename the action "
            f"(@action(name=...)): names starting with rlam_ are the server's"
        )


ListingT = TypeVar("ListingT")


def listing(
    answer: Callable[[], ListingT],
) -> Callable[
    [ServerRequestContext[Any], types.PaginatedRequestParams | None], Awaitable[ListingT]
]:
    """A handler of a ``*/list`` request: the whole list, in one page."""

    async def handle(
        _ctx: ServerRequestContext[Any], _params: types.PaginatedRequestParams | None
    ) -> ListingT:
        return answer()

    return handle


def build_server(
    dispatcher: Dispatcher, approval_timeout_s: float = APPROVAL_TIMEOUT_S
) -> tuple[Server[Any], ApprovingCalls]:
    """An MCP server whose tools are ``dispatcher``'s: the session's registry and the
    run tools; and its action calls, which the caller closes when the server stops."""
    lock = anyio.Lock()
    actions = ApprovingCalls(dispatcher.calls, approval_timeout_s)

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        async with lock:
            answer = dispatcher.server_tool(params.name, params.arguments)
            if answer is not None:
                return answer
            return await actions.call(ctx, params, caller_of(ctx))

    # The SDK looks a tool's schema up on every stateless HTTP call (for Mcp-Param
    # headers); without this it would rebuild the whole tool list each time. The
    # registry is fixed once the server runs, so the schemas are taken once.
    schemas = {tool.name: tool.input_schema for tool in dispatcher.tools()}

    async def read_resource(
        _ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        try:
            return dispatcher.read_resource(params.uri)
        except RlamError as exc:
            # what the SDK's own servers answer for a resource that does not exist
            raise MCPError(types.INVALID_PARAMS, str(exc), {"uri": params.uri}) from None

    server = Server(
        SERVER_NAME,
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=listing(lambda: types.ListToolsResult(tools=dispatcher.tools())),
        on_call_tool=call_tool,
        get_tool_input_schema=schemas.get,
        on_list_resources=listing(
            lambda: types.ListResourcesResult(resources=dispatcher.resources())
        ),
        on_list_resource_templates=listing(
            lambda: types.ListResourceTemplatesResult(
                resource_templates=dispatcher.resource_templates()
            )
        ),
        on_read_resource=read_resource,
    )
    return server, actions


def close(dispatcher: Dispatcher, actions: ApprovingCalls) -> None:
    """Record what still waits for approval as refused, then end the session's runs."""
    try:
        actions.close()
    finally:
        dispatcher.session.close()


async def serve_stdio(dispatcher: Dispatcher, approval_timeout_s: float) -> None:
    """Serve MCP on this process's stdin/stdout until the client closes them; the
    session's runs end with the server."""
    server, actions = build_server(dispatcher, approval_timeout_s)
    try:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        close(dispatcher, actions)
