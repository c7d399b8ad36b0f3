"""Concurrency and faults of ``rlam mcp``, on real subprocess servers driven by the
official SDK's client: two clients calling one HTTP server at once get every answer,
and the trace has each step's records together, in order, named after the client
that sent it, in one namespace; a client that leaves mid-call loses nothing (the step
is recorded to its end, and the next client uses its output); a server stopped
mid-call records the step as interrupted and ends its run; the run both clients
wrote audits complete and replays in a fresh process."""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_types import CallToolResult, Implementation

from rlam_jupyter.store.catalog import connect, rows
from tests.mcp_clients import http_client, http_server, raw_stdio_server, stdio_server
from tests.rlam_process import run_rlam

ACTIONS = str(Path(__file__).with_name("mcp_actions.py"))
RUN = "shared"
CLIENTS = {
    "a": (Implementation(name="client-a", version="1.0"), "legacy"),
    "b": (Implementation(name="client-b", version="2.0"), "auto"),
}
PREFIX = {info.name: f"{me}_" for me, (info, _) in CLIENTS.items()}
"""A client's name → how the outputs it names begin."""
QUITTER = Implementation(name="quitter", version="0.1")
NEWCOMER = Implementation(name="newcomer", version="0.2")
ROUNDS = 5
"""Each client makes three calls a round: 2 × 15 calls."""
SLOW_MS = 2000


@dataclass(frozen=True)
class Answer:
    """One call a client made and what came back, with when (client side)."""

    client: str
    tool: str
    arguments: dict[str, Any]
    result: CallToolResult
    sent: float
    answered: float

    @property
    def content(self) -> dict[str, Any]:
        assert not self.result.is_error, self.result.content
        content: dict[str, Any] | None = self.result.structured_content
        assert content is not None
        return content


@dataclass(frozen=True)
class Scenario:
    """What one ``rlam mcp --http`` server went through, read after it stopped."""

    store: Path
    answers: list[Answer]
    """The two clients' calls, in the order their answers came."""
    quitter_left_at: float | None
    """Wall-clock time the quitter gave up its slow call (None: the call had answered)."""
    newcomer: Answer
    exit_code: int


async def call(
    session: Client, client: str, answers: list[Answer], tool: str, **arguments: Any
) -> None:
    sent = time.monotonic()
    result = await session.call_tool(tool, arguments)
    answers.append(Answer(client, tool, arguments, result, sent, time.monotonic()))


async def hammer(url: str) -> list[Answer]:
    """Both clients at once; each round, a client loads numbers, waits for the other's,
    naps on them (a slow step taking the other's output by name) and sums its nap."""
    answers: list[Answer] = []
    made = {f"{me}_n{i}": anyio.Event() for me in CLIENTS for i in range(ROUNDS)}

    async def drive(me: str, other: str) -> None:
        info, mode = CLIENTS[me]
        async with http_client(url, info, mode) as session:
            for i in range(ROUNDS):
                # the same numbers for both: one of the two is served from the cache
                await call(session, info.name, answers, "numbers", start=i, _outputs=[f"{me}_n{i}"])
                made[f"{me}_n{i}"].set()
                await made[f"{other}_n{i}"].wait()
                nap = {"values": f"{other}_n{i}", "ms": 50, "tag": me, "_outputs": [f"{me}_nap{i}"]}
                await call(session, info.name, answers, "nap", **nap)
                await call(
                    session,
                    info.name,
                    answers,
                    "total",
                    values=f"{me}_nap{i}",
                    _outputs=[f"{me}_sum{i}"],
                )

    async with anyio.create_task_group() as group:
        group.start_soon(drive, "a", "b")
        group.start_soon(drive, "b", "a")
    return answers


async def leave_mid_call(url: str) -> float | None:
    """Call a slow step and give up on it half a second in: the client cancels the call
    and closes its session and connection while the server runs the step."""
    async with http_client(url, QUITTER) as session:
        with anyio.move_on_after(0.5) as waiting:
            await session.call_tool(
                "nap", {"values": "a_nap0", "ms": SLOW_MS, "tag": "slow", "_outputs": ["slow"]}
            )
        # the moment it left: closing the session then waits for the server
        return time.time() if waiting.cancelled_caught else None


async def come_after(url: str) -> Answer:
    answers: list[Answer] = []
    async with http_client(url, NEWCOMER, "auto") as session:
        await call(session, NEWCOMER.name, answers, "total", values="slow", _outputs=["slow_sum"])
    return answers[0]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    root = tmp_path_factory.mktemp("mcp-concurrency")
    store = root / ".rlam"
    args = ["--store", str(store), "--run", RUN, "--seed", "11", "--actions", ACTIONS]
    with http_server(*args, cwd=root) as server:
        answers = anyio.run(hammer, server.url)
        left_at = anyio.run(leave_mid_call, server.url)
        newcomer = anyio.run(come_after, server.url)
        exit_code = server.stop()
    return Scenario(store, answers, left_at, newcomer, exit_code)


def run_steps(store: Path) -> tuple[str, list[dict[str, Any]]]:
    con = connect(store)
    (run_id,) = con.execute("SELECT run_id FROM runs WHERE name = ?", [RUN]).fetchone() or ("",)
    return run_id, rows(con, "SELECT * FROM steps WHERE run_id = ? ORDER BY seq", [run_id])


def test_every_call_of_both_clients_is_answered_while_the_other_calls(scenario: Scenario) -> None:
    answers = scenario.answers
    assert len(answers) == 2 * 3 * ROUNDS
    assert all(a.content["status"] in ("succeeded", "cached") for a in answers)
    a = [x for x in answers if x.client == "client-a"]
    b = [x for x in answers if x.client == "client-b"]
    # the premise: calls of the two clients were in flight at the same time
    assert any(x.sent < y.answered and y.sent < x.answered for x in a for y in b)
    for i in range(ROUNDS):
        pair = [x.content for x in answers if x.tool == "numbers" and x.arguments["start"] == i]
        assert sorted(c["status"] for c in pair) == ["cached", "succeeded"]
        assert pair[0]["outputs"][0]["hash"] == pair[1]["outputs"][0]["hash"]


def test_each_step_is_accepted_and_ended_once_in_order(scenario: Scenario) -> None:
    _, steps = run_steps(scenario.store)
    answered = [a.content["step_id"] for a in [*scenario.answers, scenario.newcomer]]
    assert len(steps) == len(answered) + 1  # and the quitter's slow step
    assert [s["seq"] for s in steps] == list(range(1, len(steps) + 1))
    assert set(answered) < {s["step_id"] for s in steps}
    con = connect(scenario.store)
    for step in steps:
        events = con.execute(
            "SELECT status FROM step_events WHERE step_id = ? ORDER BY event_no", [step["step_id"]]
        ).fetchall()
        assert events == [("accepted",), (step["status"],)], step["seq"]
        assert step["status"] in ("succeeded", "cached")


def test_each_steps_records_are_one_block_in_journal_order(scenario: Scenario) -> None:
    """In the run's journal order (``event_no``: one writer, so the order it wrote in)
    each step's records — its call, its states, its artifacts and edges — are one block,
    and the blocks come in step order."""
    run_id, steps = run_steps(scenario.store)
    owner = {s["step_id"]: s["seq"] for s in steps}
    owner.update({s["proposed_by"]: s["seq"] for s in steps})
    con = connect(scenario.store)
    records = con.execute(
        "SELECT event_no, step_id FROM step_events WHERE run_id = ? "
        "UNION ALL SELECT event_no, step_id FROM artifacts WHERE run_id = ? "
        "UNION ALL SELECT event_no, call_id FROM llm_calls WHERE run_id = ? "
        "UNION ALL SELECT event_no, src FROM edges WHERE run_id = ? AND type <> 'derived_from' "
        "ORDER BY event_no",
        [run_id] * 4,
    ).fetchall()
    order = [owner[key] for _, key in records]
    blocks = [seq for i, seq in enumerate(order) if i == 0 or order[i - 1] != seq]
    assert blocks == sorted(set(owner.values())), blocks


def test_each_step_names_the_client_that_sent_it(scenario: Scenario) -> None:
    _, steps = run_steps(scenario.store)
    sent_by = {a.content["step_id"]: a.client for a in [*scenario.answers, scenario.newcomer]}
    con = connect(scenario.store)
    for step in steps:
        (model, request) = con.execute(
            "SELECT model, request FROM llm_calls WHERE call_id = ?", [step["proposed_by"]]
        ).fetchone() or (None, None)
        assert step["origin"] == "mcp"
        assert model == sent_by.get(step["step_id"], QUITTER.name), step["seq"]
        assert json.loads(request)["params"]["name"] == step["action"]


def test_one_clients_outputs_are_the_others_inputs(scenario: Scenario) -> None:
    """One namespace: a nap takes the other client's numbers by name, and gets their hash."""
    _, steps = run_steps(scenario.store)
    by_id = {s["step_id"]: s for s in steps}
    made = {
        name: output["hash"]
        for answer in scenario.answers
        for name, output in zip(
            answer.arguments["_outputs"], answer.content["outputs"], strict=True
        )
    }
    naps = [a for a in scenario.answers if a.tool == "nap"]
    assert len(naps) == 2 * ROUNDS
    for nap in naps:
        taken = nap.arguments["values"]
        assert not taken.startswith(PREFIX[nap.client])  # the other client's output
        step = by_id[nap.content["step_id"]]
        assert json.loads(step["inputs"]) == {"values": made[taken]}


def test_a_client_leaving_mid_call_loses_nothing(scenario: Scenario) -> None:
    assert scenario.quitter_left_at is not None, "the slow call answered before the client left"
    _, steps = run_steps(scenario.store)
    slow = next(s for s in steps if json.loads(s["params"]).get("tag") == "slow")
    assert slow["status"] == "succeeded"
    assert slow["duration_ms"] >= SLOW_MS
    started = slow["started_at"].timestamp()
    # the client left while the step ran; the server recorded it to its end all the same
    assert started < scenario.quitter_left_at < started + SLOW_MS / 1000
    after = scenario.newcomer.content
    assert after["status"] == "succeeded"
    assert after["outputs"][0]["preview"] == "12"  # 2 × 2 × (0 + 1 + 2): the slow step's output
    newcomer_step = next(s for s in steps if s["step_id"] == after["step_id"])
    assert json.loads(newcomer_step["inputs"]) == {"values": json.loads(slow["outputs"])["result"]}


def test_the_server_stopped_with_sigterm_ended_its_run(scenario: Scenario) -> None:
    assert scenario.exit_code == -signal.SIGTERM  # it still dies of it, as supervisors expect
    con = connect(scenario.store)
    (run,) = rows(con, "SELECT status, ended_at FROM runs WHERE name = ?", [RUN])
    assert run["status"] == "succeeded"
    assert run["ended_at"] is not None


def test_the_run_both_clients_wrote_is_complete(scenario: Scenario) -> None:
    result = run_rlam("audit", RUN, "--store", str(scenario.store), "--no-reproduce", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["metrics"]["trace_completeness"] == 1.0
    assert report["runs"][0]["missing"] == []
    # nothing failed: no interrupted run, no failure to make visible
    assert report["failures"] == []
    assert report["metrics"]["failure_visibility"] is None


def test_the_run_both_clients_wrote_replays_and_verifies_in_a_fresh_process(
    scenario: Scenario,
) -> None:
    _, steps = run_steps(scenario.store)
    # with the file the server served, and with the source the trace recorded of it alone
    for actions in (["--actions", ACTIONS], []):
        result = run_rlam(
            "replay", RUN, "--verify", "--store", str(scenario.store), *actions, "--json"
        )
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads(result.stdout)
        assert report["ok"]
        assert report["verified"]
        assert sum(report["counts"].values()) == len(steps)
        assert set(report["counts"]) <= {"identical", "cached"}, report["counts"]
    audited = run_rlam("audit", RUN, "--store", str(scenario.store), "--json")
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert json.loads(audited.stdout)["metrics"]["reproducibility_success"] == 1.0


def slow_stdio_call(root: Path, ms: int) -> None:
    """Over stdio: load numbers, call a step of ``ms`` milliseconds and give up on it half
    a second in; leaving closes the server's stdin (the SDK then waits 2 s for it to end,
    and stops it with SIGTERM if it has not)."""
    params = stdio_server("--store", ".rlam", "--run", RUN, "--actions", ACTIONS, cwd=root)

    async def drive() -> None:
        async with Client(params, read_timeout_seconds=120) as session:
            await session.call_tool("numbers", {"start": 1, "_outputs": ["n"]})
            with anyio.move_on_after(0.5) as waiting:
                await session.call_tool("nap", {"values": "n", "ms": ms, "_outputs": ["slow"]})
            assert waiting.cancelled_caught

    anyio.run(drive)


def test_a_stdio_client_leaving_mid_call_lets_the_step_end_and_the_run_close(
    tmp_path: Path,
) -> None:
    slow_stdio_call(tmp_path, 1000)
    con = connect(tmp_path / ".rlam")
    assert con.execute("SELECT status FROM steps ORDER BY seq").fetchall() == [
        ("succeeded",),
        ("succeeded",),
    ]
    run = rows(con, "SELECT status, ended_at FROM runs")
    assert run[0]["status"] == "succeeded"
    assert run[0]["ended_at"] is not None


def test_a_stdio_server_stopped_mid_call_records_the_step_interrupted(tmp_path: Path) -> None:
    """The step outlasts the SDK's 2 s grace: SIGTERM ends the server as Ctrl-C would —
    the step's own writer records it interrupted and the run ends — rather than leaving
    an accepted step for readers to call interrupted once they see the writer dead."""
    slow_stdio_call(tmp_path, 8000)
    con = connect(tmp_path / ".rlam")
    slow = rows(con, "SELECT step_id, status, error_type FROM steps WHERE seq = 2")[0]
    assert slow["status"] == "interrupted"
    assert slow["error_type"] == "KeyboardInterrupt"
    recorded = con.execute(
        "SELECT status FROM step_events WHERE step_id = ? ORDER BY event_no", [slow["step_id"]]
    ).fetchall()
    assert recorded == [("accepted",), ("interrupted",)]
    run = rows(con, "SELECT status, ended_at FROM runs")[0]
    assert run["ended_at"] is not None
    audit = run_rlam("audit", "--store", str(tmp_path / ".rlam"), "--no-reproduce", "--json")
    report = json.loads(audit.stdout)
    # every step has its end recorded; the interrupted one is a failure, and shown
    assert report["metrics"]["trace_completeness"] == 1.0
    assert [(f["seq"], f["status"], f["visible"]) for f in report["failures"]] == [
        (2, "interrupted", True)
    ]


def test_a_stdio_server_stopped_between_calls_ends_its_run_and_exits(tmp_path: Path) -> None:
    """SIGTERM while the client still holds stdin open (a service manager, ``kill``): the
    run ends and the process exits, not held up by the SDK's blocked stdin reader."""
    with raw_stdio_server(
        "--store", ".rlam", "--run", RUN, "--actions", ACTIONS, cwd=tmp_path
    ) as server:
        server.initialize()
        answer = server.ask(
            {
                "id": 2,
                "method": "tools/call",
                "params": {"name": "numbers", "arguments": {"start": 1}},
            }
        )
        assert answer is not None
        assert answer["result"]["structuredContent"]["status"] == "succeeded"
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=20) == -signal.SIGTERM
    run = rows(connect(tmp_path / ".rlam"), "SELECT status, ended_at FROM runs")[0]
    assert run["status"] == "succeeded"
    assert run["ended_at"] is not None
