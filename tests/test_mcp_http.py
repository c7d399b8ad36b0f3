"""``rlam mcp --http`` as a real subprocess, driven by the official SDK's client over
Streamable HTTP with the bearer token, in both protocol eras the SDK serves (the
initialize handshake and the stateless per-request envelope); requests without the
token get 401, and the server refuses to start without one."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_types import Implementation

from rlam_jupyter.store.catalog import connect
from tests.mcp_clients import TOKEN, http_client, http_server
from tests.rlam_process import run_rlam

CLIENT = Implementation(name="rlam-http-client", version="0.9")
LOAD = ("load_dataset", {"name": "iris", "_outputs": ["data"]})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``rlam mcp --http 127.0.0.1:0 --token TOKEN``; yields its URL (read from stderr)."""
    store = tmp_path_factory.mktemp("mcp-http") / ".rlam"
    with http_server("--store", str(store), "--run", "web") as running:
        yield running.url, store


def call(url: str, mode: str, token: str = TOKEN) -> Any:
    async def drive() -> Any:
        async with http_client(url, CLIENT, mode, token) as client:
            tools = (await client.list_tools()).tools
            return tools, await client.call_tool(*LOAD)

    return anyio.run(drive)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_a_call_over_http_is_a_succeeded_step(server: tuple[str, Path], mode: str) -> None:
    """``legacy``: the initialize handshake (2025-11-25); ``auto``: the SDK's default,
    which discovers the stateless revision (2026-07-28) and speaks it."""
    url, store = server
    tools, result = call(url, mode)
    assert {"load_dataset", "rlam_fork", "rlam_audit"} <= {t.name for t in tools}
    assert not result.is_error, result.content
    content = result.structured_content
    assert content["status"] in ("succeeded", "cached")
    con = connect(store)
    row = con.execute(
        "SELECT s.status, c.model, c.attributes FROM steps s JOIN llm_calls c "
        "ON c.call_id = s.proposed_by WHERE s.step_id = ?",
        [content["step_id"]],
    ).fetchone()
    assert row is not None
    assert row[0] == content["status"]
    assert row[1] == CLIENT.name
    # whichever mode called first ran the step; the later call is served from the cache
    first = con.execute("SELECT status FROM steps ORDER BY seq LIMIT 1").fetchone()
    assert first == ("succeeded",)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-0123456789"}])
def test_a_request_without_the_token_gets_401(
    server: tuple[str, Path], headers: dict[str, str]
) -> None:
    url, _ = server
    request = urllib.request.Request(
        url,
        data=b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
        headers={"Content-Type": "application/json", "Accept": "application/json", **headers},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 401


def test_http_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    result = run_rlam("mcp", "--store", str(tmp_path / ".rlam"), "--http", "127.0.0.1:0")
    assert result.returncode != 0
    assert "--token" in result.stderr
    assert "RLAM_MCP_TOKEN" in result.stderr
    assert not (tmp_path / ".rlam").exists()  # nothing was opened


def test_http_refuses_a_non_loopback_host_and_a_short_token(tmp_path: Path) -> None:
    public = run_rlam("mcp", "--http", "0.0.0.0:8765", "--token", TOKEN, cwd=tmp_path)
    assert public.returncode != 0
    assert "loopback" in public.stderr
    short = run_rlam("mcp", "--http", "8765", "--token", "T", cwd=tmp_path)
    assert short.returncode != 0
    assert "at least 16" in short.stderr
