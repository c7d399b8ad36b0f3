"""``rlam mcp``: the registry as an MCP server over stdio, on the official SDK's low-level
server (tools are built from the registry at run time, so no decorated functions).

The server owns one :class:`Session` (its engine, its runs, its namespace): artifacts
persist across calls as in a kernel. Calls are serialised: every action call runs
under one lock, on the event loop's own thread — the main thread, where the policy's
timeouts (SIGALRM) work — so two calls never interleave a step's records or the
namespace. The run tools only read the trace, through a snapshot of the store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from rlam_jupyter.actions.registry import Registry
from rlam_jupyter.engine.session import Session
from rlam_jupyter.errors import RlamError
from rlam_jupyter.frontends.mcp.arguments import check_arguments
from rlam_jupyter.frontends.mcp.calls import ActionCalls, Caller
from rlam_jupyter.frontends.mcp.results import data_answer, error_answer, step_answer
from rlam_jupyter.frontends.mcp.run_operations import OPERATION_TOOLS
from rlam_jupyter.frontends.mcp.run_tools import RUN_TOOLS
from rlam_jupyter.frontends.mcp.tool_list import all_tools
from rlam_jupyter.operations.browse.rows import Row
from rlam_jupyter.operations.browse.snapshots import SnapshotCache
from rlam_jupyter.version import __version__

SERVER_NAME = "rlam-jupyter"
INSTRUCTIONS = (
    "Every tool but the rlam_* ones is an action of the R-LAM registry: a call is a "
    "proposal, schema-checked, run deterministically (seeded, cached) and recorded in a "
    "provenance trace. Artifact inputs are the names of earlier outputs; name outputs "
    "with _outputs. rlam_runs, rlam_steps and rlam_step read the trace; rlam_replay "
    "verifies a run, rlam_fork branches one, rlam_diff compares two, rlam_audit scores them."
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


def check_tool_names(registry: Registry) -> None:
    """Refuse to serve an action whose name is a run tool's: the client could reach only
    one of them, and a renamed tool would no longer match the action in the trace."""
    for name in sorted(set(registry) & (set(RUN_TOOLS) | set(OPERATION_TOOLS))):
        spec = registry[name]
        raise RlamError(
            f"the action {name!r} ({spec.func.__module__}.{spec.func.__qualname__}) has "
            f"the name of the run tool {name!r} of rlam mcp; rename the action "
            f"(@action(name=...)): names starting with rlam_ are the server's"
        )


def build_server(session: Session, calls: ActionCalls) -> Server[Any]:
    """An MCP server whose tools are ``session``'s registry and the run tools."""
    lock = anyio.Lock()
    snapshots = SnapshotCache(max_stores=1)

    async def list_tools(
        _ctx: ServerRequestContext[Any], _params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=all_tools(session.engine.registry))

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        async with lock:
            name, arguments = params.name, params.arguments
            run_tool = RUN_TOOLS.get(name)
            if run_tool is not None:
                return _answer(
                    run_tool.definition,
                    arguments,
                    lambda checked: run_tool.answer(snapshots.get(session.engine.layout), checked),
                )
            operation = OPERATION_TOOLS.get(name)
            if operation is not None:
                return _answer(
                    operation.definition,
                    arguments,
                    lambda checked: operation.answer(session, checked),
                )
            result, proposal = calls.call(name, arguments, caller_of(ctx))
            return step_answer(result, proposal)

    return Server(
        SERVER_NAME,
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def _answer(
    tool: types.Tool, arguments: Any, answer: Callable[[dict[str, Any]], Row]
) -> types.CallToolResult:
    """A run tool's answer, or a tool error naming the bad argument or the missing run."""
    try:
        data = answer(check_arguments(tool.name, tool.input_schema, arguments))
    except (RlamError, ValueError, TypeError) as exc:
        message = str(exc)
        return error_answer(message if message.startswith(tool.name) else f"{tool.name}: {message}")
    return data_answer(data, f"{tool.name}: answered from the trace store")


async def serve_stdio(session: Session, calls: ActionCalls) -> None:
    """Serve MCP on this process's stdin/stdout until the client closes them; the
    session's runs end with the server."""
    server = build_server(session, calls)
    try:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        session.close()
