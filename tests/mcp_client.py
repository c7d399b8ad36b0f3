"""Drive the notebook-attached MCP server (``/rlam/mcp`` of a test's Jupyter process)
with the official SDK's client over Streamable HTTP, authenticated with the Jupyter
token, as an agent's MCP client would."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types import CallToolResult, Implementation, TextContent

from tests.jupyter_app import JupyterApp

CLIENT = Implementation(name="attached-test-client", version="0.1")

Drive = Callable[[Client], Awaitable[Any]]


def drive(app: JupyterApp, work: Drive, token: str | None = None, mode: str = "auto") -> Any:
    """Run ``work`` with a client connected to ``app``'s ``/rlam/mcp``; its answer."""

    async def run() -> Any:
        headers = {"Authorization": f"Bearer {token or app.token}"}
        http = create_mcp_http_client(headers=headers)
        async with (
            http,
            Client(
                streamable_http_client(f"{app.url}rlam/mcp", http_client=http),
                client_info=CLIENT,
                mode=mode,  # type: ignore[arg-type]
                read_timeout_seconds=180,
            ) as client,
        ):
            return await work(client)

    return anyio.run(run)


def text(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))
