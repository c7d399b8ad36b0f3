"""``rlam mcp`` as a real subprocess, and the official SDK's client that drives it: the
HTTP server (``--http 127.0.0.1:0`` with a bearer token, its URL read from stderr) and
the client sessions the MCP tests open on it or over stdio."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types import Implementation

RLAM_MCP = [sys.executable, "-m", "rlam_jupyter", "mcp"]
TOKEN = "test-token-0123456789abcdef"


def server_env() -> dict[str, str]:
    """This process's environment without the test's store or token settings."""
    return {k: v for k, v in os.environ.items() if k not in ("RLAM_HOME", "RLAM_MCP_TOKEN")}


@dataclass(frozen=True)
class HttpServer:
    """A running ``rlam mcp --http`` process and the URL it serves MCP at."""

    process: subprocess.Popen[str]
    url: str
    stderr: list[str]
    """What it printed to stderr after its first line (read as it comes, so a chatty
    server never blocks on a full pipe)."""

    def stop(self) -> int:
        """Stop it as a service manager would (SIGTERM); its exit code."""
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=60)


@contextlib.contextmanager
def http_server(*args: str, cwd: Path | None = None) -> Iterator[HttpServer]:
    """``rlam mcp ARGS --http 127.0.0.1:0 --token TOKEN``, stopped when the block ends."""
    process = subprocess.Popen(
        [*RLAM_MCP, *args, "--http", "127.0.0.1:0", "--token", TOKEN],
        stderr=subprocess.PIPE,
        text=True,
        env=server_env(),
        cwd=cwd,
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    found = re.search(r"at (http://\S+/mcp)", line)
    server = HttpServer(process, found.group(1) if found else "", [])
    reader = threading.Thread(target=server.stderr.extend, args=(process.stderr,), daemon=True)
    reader.start()
    try:
        assert found, line
        yield server
    finally:
        server.stop()
        reader.join(timeout=10)
        process.stderr.close()


@contextlib.asynccontextmanager
async def http_client(
    url: str, client: Implementation, mode: str = "legacy", token: str = TOKEN
) -> AsyncIterator[Client]:
    """An SDK client session over Streamable HTTP with the bearer token. ``mode``:
    ``legacy`` (the initialize handshake) or ``auto`` (the stateless revision)."""
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with (
        http,
        Client(
            streamable_http_client(url, http_client=http),
            client_info=client,
            mode=mode,
            read_timeout_seconds=120,
        ) as session,
    ):
        yield session


def stdio_server(*args: str, cwd: Path) -> StdioServerParameters:
    """``rlam mcp ARGS`` in ``cwd`` as the SDK's stdio client starts it."""
    return StdioServerParameters(
        command=RLAM_MCP[0], args=[*RLAM_MCP[1:], *args], env=server_env(), cwd=str(cwd)
    )


@dataclass(frozen=True)
class RawStdio:
    """``rlam mcp`` over stdio spoken to a JSON-RPC line at a time: for messages the SDK's
    client will not send, and for signals while its stdin is still open."""

    process: subprocess.Popen[str]

    def ask(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Send ``message``; a request's answer (a notification has none)."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps({"jsonrpc": "2.0", **message}) + "\n")
        self.process.stdin.flush()
        if "id" not in message:
            return None
        answer: dict[str, Any] = json.loads(self.process.stdout.readline())
        return answer

    def initialize(self) -> None:
        """The initialize handshake (2025-11-25), as a client named ``raw``."""
        self.ask(
            {
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "raw", "version": "1"},
                },
            }
        )
        self.ask({"method": "notifications/initialized"})


@contextlib.contextmanager
def raw_stdio_server(*args: str, cwd: Path) -> Iterator[RawStdio]:
    """``rlam mcp ARGS`` in ``cwd`` with pipes; closing its stdin at the end stops it."""
    process = subprocess.Popen(
        [*RLAM_MCP, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=server_env(),
        cwd=cwd,
    )
    try:
        yield RawStdio(process)
    finally:
        assert process.stdin is not None
        assert process.stdout is not None
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
        process.wait(timeout=60)
        process.stdout.close()
