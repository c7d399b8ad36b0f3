"""Approval over MCP, headless: ``rlam mcp --approve ...`` puts each step that needs a
decision to the client's user as an elicitation form (the SDK's own client answers it
here, as Claude Code or VS Code would show it). Approve, reject with a reason, edit a
parameter, decline; a client without elicitation and a form nobody answers in time are
refusals that say why; every decision lands in ``approvals`` and nothing refused runs."""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from rlam_jupyter.store.catalog import connect

CLIENT = types.Implementation(name="approving-client", version="2.0")
Answer = Callable[[types.ElicitRequestParams], Awaitable[types.ElicitResult]]


def drive(
    store: Path,
    calls: list[tuple[str, dict[str, Any]]],
    answers: list[Answer] | None,
    *options: str,
    mode: str = "auto",
) -> tuple[list[types.CallToolResult], list[types.ElicitRequestParams]]:
    """Start ``rlam mcp`` with ``options``, make ``calls``; the n-th form is answered by
    ``answers[n]`` (None: the client declares no elicitation capability). ``mode``
    ``legacy``: the initialize handshake (2025-11-25), where the server sends the form
    on the back-channel; ``auto``: the stateless revision (2026-07-28), where the call
    answers ``input_required`` and the client calls again with the answer."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "rlam_jupyter", "mcp", "--store", str(store), "--run", "r", *options],
        env={k: v for k, v in os.environ.items() if k != "RLAM_HOME"},
        cwd=str(store.parent),
    )
    forms: list[types.ElicitRequestParams] = []

    async def on_form(_context: Any, form: types.ElicitRequestParams) -> types.ElicitResult:
        assert answers is not None
        forms.append(form)
        return await answers[len(forms) - 1](form)

    async def run() -> list[types.CallToolResult]:
        async with Client(
            params,
            client_info=CLIENT,
            mode=mode,  # type: ignore[arg-type]
            read_timeout_seconds=120,
            elicitation_callback=on_form if answers is not None else None,
        ) as client:
            return [await client.call_tool(name, arguments) for name, arguments in calls]

    return anyio.run(run), forms


def answer(**content: Any) -> Answer:
    async def respond(_form: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content=content)

    return respond


def decline() -> Answer:
    async def respond(_form: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="decline")

    return respond


def text(result: types.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, types.TextContent))


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_approve_reject_edit_and_decline_through_the_clients_form(
    tmp_path: Path, mode: str
) -> None:
    store = tmp_path / ".rlam"
    calls = [
        ("load_dataset", {"name": "iris", "_outputs": ["data"]}),
        ("describe", {"data": "data", "_outputs": ["summary"]}),
        ("split", {"data": "data", "test_size": 0.3, "_outputs": ["a", "b", "c", "d"]}),
        ("describe", {"data": "data", "_outputs": ["again"]}),
    ]
    answers = [
        answer(decision="approve"),
        answer(decision="reject", reason="not this summary"),
        answer(decision="approve", test_size=0.25, reason="smaller test set"),
        decline(),
    ]
    results, forms = drive(store, calls, answers, "--approve", "all", mode=mode)

    assert [r.is_error for r in results] == [False, True, False, True]
    assert "rejected by approving-client: not this summary" in text(results[1])
    assert "declined in approving-client" in text(results[3])
    first = forms[0]
    assert isinstance(first, types.ElicitRequestFormParams)
    assert "load_dataset" in first.message
    assert "step 1 of run r" in first.message
    assert first.requested_schema["properties"]["name"]["default"] == "iris"
    assert forms[2].requested_schema["properties"]["test_size"]["default"] == 0.3

    con = connect(store)
    steps = con.sql("SELECT seq, action, status, params FROM steps ORDER BY seq").fetchall()
    assert [(s[1], s[2]) for s in steps] == [
        ("load_dataset", "succeeded"),
        ("describe", "rejected"),
        ("split", "succeeded"),
        ("describe", "rejected"),
    ]
    assert '"test_size": 0.25' in steps[2][3]  # the edit is what ran
    approvals = con.sql(
        "SELECT a.decision, a.reason, a.edited_params, a.decided_by FROM approvals a "
        "JOIN steps s USING (step_id) ORDER BY s.seq"
    ).fetchall()
    assert approvals == [
        ("approved", "", None, "approving-client"),
        ("rejected", "not this summary", None, "approving-client"),
        ("approved", "smaller test set", '{"test_size": 0.25}', "approving-client"),
        ("rejected", "declined in approving-client", None, "approving-client"),
    ]
    outputs = con.sql(
        "SELECT count(*) FROM artifacts a JOIN steps s USING (step_id) WHERE s.status = 'rejected'"
    ).fetchall()
    assert outputs == [(0,)]  # nothing refused produced anything


def test_effects_mode_asks_only_for_steps_with_effects(tmp_path: Path) -> None:
    csv = tmp_path / "data.csv"
    csv.write_text("x,y\n1,2\n3,4\n")
    calls = [
        ("load_dataset", {"name": "iris", "_outputs": ["data"]}),
        ("load_csv", {"path": str(csv), "_outputs": ["table"]}),
    ]
    results, forms = drive(
        tmp_path / ".rlam", calls, [answer(decision="approve")], "--approve", "effects"
    )
    assert [r.is_error for r in results] == [False, False]
    assert len(forms) == 1
    assert "load_csv" in forms[0].message


def test_a_client_without_elicitation_is_refused_with_the_way_out(tmp_path: Path) -> None:
    store = tmp_path / ".rlam"
    calls = [("load_dataset", {"name": "iris", "_outputs": ["data"]})]
    results, _forms = drive(store, calls, None, "--approve", "all")
    assert results[0].is_error
    message = text(results[0])
    assert "offers no elicitation" in message
    assert "--approve none" in message
    con = connect(store)
    assert con.sql("SELECT status FROM steps").fetchall() == [("rejected",)]
    assert con.sql("SELECT decision, decided_by FROM approvals").fetchall() == [
        ("rejected", "rlam")
    ]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_a_form_nobody_answers_in_time_is_refused_and_recorded(tmp_path: Path, mode: str) -> None:
    async def too_slow(_form: types.ElicitRequestParams) -> types.ElicitResult:
        await anyio.sleep(5)
        return types.ElicitResult(action="accept", content={"decision": "approve"})

    store = tmp_path / ".rlam"
    calls = [
        ("load_dataset", {"name": "iris", "_outputs": ["data"]}),
        ("rlam_runs", {}),
    ]
    results, _forms = drive(
        store, calls, [too_slow], "--approve", "all", "--approval-timeout", "1", mode=mode
    )
    assert results[0].is_error
    assert "no decision within 1 s" in text(results[0])
    assert not results[1].is_error  # the server still answers after the timeout
    assert connect(store).sql("SELECT status FROM steps").fetchall() == [("rejected",)]
