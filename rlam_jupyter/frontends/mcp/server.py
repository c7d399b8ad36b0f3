"""``rlam mcp``: the registry as an MCP server over stdio, on the official SDK's low-level
server (tools are built from the registry at run time, so no decorated functions).

The server owns one :class:`Session` (its engine, its runs, its namespace): artifacts
persist across calls as in a kernel. Calls are serialised: every action call runs
under one lock, on the event loop's own thread — the main thread, where the policy's
timeouts (SIGALRM) work — so two calls never interleave a step's records or the
namespace. The run tools only read the trace, through a snapshot of the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from rlam_jupyter.engine.session import Session
from rlam_jupyter.errors import RlamError
from rlam_jupyter.frontends.mcp.calls import ActionCalls, Caller
from rlam_jupyter.frontends.mcp.results import data_answer, error_answer, step_answer
from rlam_jupyter.frontends.mcp.run_tools import RUN_TOOLS
from rlam_jupyter.frontends.mcp.tool_list import all_tools
from rlam_jupyter.operations.browse.snapshots import SnapshotCache
from rlam_jupyter.version import __version__

SERVER_NAME = "rlam-jupyter"
INSTRUCTIONS = (
    "Every tool but the rlam_* ones is an action of the R-LAM registry: a call is a "
    "proposal, schema-checked, run deterministically (seeded, cached) and recorded in a "
    "provenance trace. Artifact inputs are the names of earlier outputs; name outputs "
    "with _outputs. rlam_runs, rlam_steps and rlam_step read the trace."
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
            run_tool = RUN_TOOLS.get(params.name)
            if run_tool is not None:
                return _read(
                    run_tool.answer, snapshots, session, params.arguments or {}, params.name
                )
            result, proposal = calls.call(params.name, params.arguments, caller_of(ctx))
            return step_answer(result, proposal)

    return Server(
        SERVER_NAME,
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def _read(
    answer: Any,
    snapshots: SnapshotCache,
    session: Session,
    arguments: Mapping[str, Any],
    name: str,
) -> types.CallToolResult:
    try:
        data = answer(snapshots.get(session.engine.layout), arguments)
    except KeyError as exc:
        return error_answer(f"{name}: the argument {exc.args[0]!r} is required")
    except (RlamError, ValueError, TypeError) as exc:
        return error_answer(f"{name}: {exc}")
    return data_answer(data, f"{name}: answered from the trace store")


async def serve_stdio(session: Session, calls: ActionCalls) -> None:
    """Serve MCP on this process's stdin/stdout until the client closes them; the
    session's runs end with the server."""
    server = build_server(session, calls)
    try:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        session.close()
