"""Calls the protocol itself refuses, on a real ``rlam mcp`` subprocess: a 10 MB argument
is refused by our code as a ``rejected`` step recorded by size and hash (nothing runs);
arguments that are not a JSON object never reach our code: the SDK answers them with a
JSON-RPC "invalid params" error (sent raw, since the SDK's client will not send them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from rlam_jupyter.store.catalog import connect

RLAM_MCP = [sys.executable, "-m", "rlam_jupyter", "mcp", "--store", ".rlam", "--run", "p"]


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "RLAM_HOME"}


def test_a_10_mb_argument_is_refused_recorded_by_hash_and_nothing_runs(tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=RLAM_MCP[0], args=RLAM_MCP[1:], env=env(), cwd=str(tmp_path)
    )

    async def drive() -> Any:
        async with Client(params, read_timeout_seconds=120) as client:
            return await client.call_tool("load_dataset", {"name": "x" * 10_000_000})

    answer = anyio.run(drive)
    assert answer.is_error
    text = answer.content[0].text
    assert "10.0 MB of JSON" in text
    assert "at most 1.0 MB" in text
    con = connect(tmp_path / ".rlam")
    (status, message, step_id, call_id) = con.execute(
        "SELECT status, error_message, step_id, proposed_by FROM steps"
    ).fetchone()
    assert status == "rejected"
    assert "10.0 MB of JSON" in message
    assert con.execute(
        "SELECT status FROM step_events WHERE step_id = ?", [step_id]
    ).fetchall() == [("rejected",)]
    request = json.loads(
        con.execute("SELECT request FROM llm_calls WHERE call_id = ?", [call_id]).fetchone()[0]
    )
    kept = request["params"]["arguments"]["rlam.arguments_omitted"]
    assert kept["bytes"] > 10_000_000
    assert kept["hash"]
    assert len(json.dumps(request)) < 10_000


def test_arguments_that_are_not_an_object_get_the_sdks_invalid_params(tmp_path: Path) -> None:
    process = subprocess.Popen(
        RLAM_MCP, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env(), cwd=tmp_path
    )
    assert process.stdin is not None
    assert process.stdout is not None

    def ask(message: dict[str, Any]) -> dict[str, Any] | None:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(json.dumps({"jsonrpc": "2.0", **message}) + "\n")
        process.stdin.flush()
        return json.loads(process.stdout.readline()) if "id" in message else None

    try:
        ask(
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
        ask({"method": "notifications/initialized"})
        for request_id, arguments in [(2, [1, 2]), (3, "iris"), (4, 7)]:
            answer = ask(
                {
                    "id": request_id,
                    "method": "tools/call",
                    "params": {"name": "load_dataset", "arguments": arguments},
                }
            )
            assert answer is not None
            assert answer["id"] == request_id
            assert answer["error"]["code"] == -32602
            assert answer["error"]["message"] == "Invalid request parameters"
    finally:
        process.stdin.close()
        process.wait(timeout=60)
    assert (
        not (tmp_path / ".rlam" / "journal").exists()
        or not connect(tmp_path / ".rlam").execute("SELECT count(*) FROM steps").fetchone()[0]
    )
