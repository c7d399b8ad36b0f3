"""Calls the protocol itself refuses, on a real ``rlam mcp`` subprocess: a 10 MB argument
is refused by our code as a ``rejected`` step recorded by size and hash (nothing runs);
arguments that are not a JSON object never reach our code: the SDK answers them with a
JSON-RPC "invalid params" error (sent raw, since the SDK's client will not send them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from rlam_jupyter.store.catalog import connect
from tests.mcp_clients import raw_stdio_server, stdio_server

ARGS = ["--store", ".rlam", "--run", "p"]


def test_a_10_mb_argument_is_refused_recorded_by_hash_and_nothing_runs(tmp_path: Path) -> None:
    params = stdio_server(*ARGS, cwd=tmp_path)

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
    with raw_stdio_server(*ARGS, cwd=tmp_path) as server:
        server.initialize()
        for request_id, arguments in [(2, [1, 2]), (3, "iris"), (4, 7)]:
            answer = server.ask(
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
    assert (
        not (tmp_path / ".rlam" / "journal").exists()
        or not connect(tmp_path / ".rlam").execute("SELECT count(*) FROM steps").fetchone()[0]
    )
