"""The floor of ``benchmarks/mcp.py``: a bare MCP server on the same SDK (its low-level
``Server``, as ``rlam mcp`` uses) with one no-op tool, over stdio or Streamable HTTP.

Run: ``python benchmarks/mcp_floor.py`` (stdio) or ``python benchmarks/mcp_floor.py --http
PORT`` (prints its URL to stderr, as ``rlam mcp --http`` does). No store, no registry, no
auth: what any server on this SDK pays per call.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from typing import Any

# this folder holds benchmarks/mcp.py, which would shadow the SDK's package `mcp`: it goes
# last on the path (a stable sort)
sys.path.sort(key=lambda entry: Path(entry or ".").resolve() == Path(__file__).resolve().parent)

import anyio
import mcp_types as types
import uvicorn
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

NOOP = types.Tool(
    name="noop",
    description="Does nothing.",
    input_schema={"type": "object", "properties": {"n": {"type": "integer"}}},
)


def build() -> Server[Any]:
    async def list_tools(
        _ctx: ServerRequestContext[Any], _params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[NOOP])

    async def call_tool(
        _ctx: ServerRequestContext[Any], _params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text="0")])

    return Server("mcp-floor", on_list_tools=list_tools, on_call_tool=call_tool)


async def serve_stdio() -> None:
    server = build()
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


async def serve_http(port: int) -> None:
    # proto IPPROTO_TCP, as the sockets uvicorn binds itself (through asyncio) have it:
    # asyncio turns Nagle's algorithm off (TCP_NODELAY) only on such sockets' connections
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    app = build().streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1")
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    print(f"mcp floor: serving MCP (Streamable HTTP) at {url}", file=sys.stderr, flush=True)
    await uvicorn.Server(config).serve(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", type=int, default=None, metavar="PORT")
    args = parser.parse_args()
    if args.http is None:
        anyio.run(serve_stdio)
    else:
        anyio.run(serve_http, args.http)


if __name__ == "__main__":
    main()
