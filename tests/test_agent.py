"""The agent loop against a real loopback HTTP server speaking the OpenAI API, driven
through the real ``openai`` client: proposals, refusals, recoveries, recording, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rlam_jupyter.engine import Engine
from rlam_jupyter.operations.agent import AgentLimits, AgentOutcome, run_agent
from rlam_jupyter.operations.agent.openai_provider import OpenAIProposer
from rlam_jupyter.policy import Decision
from rlam_jupyter.store.catalog import connect
from tests.fake_openai import FakeOpenAI

SECRET = "sk-test-DO-NOT-STORE-0123456789"

LOAD = ("load_dataset", {"name": "breast_cancer", "_outputs": ["data"]})
SPLIT = (
    "split",
    {"data": "data", "test_size": 0.25, "_outputs": ["X_train", "X_test", "y_train", "y_test"]},
)
SCALE = ("scale", {"X_train": "X_train", "X_test": "X_test", "_outputs": ["Xs_train", "Xs_test"]})
TRAIN = ("train_model", {"X": "Xs_train", "y": "y_train", "C": 1.0, "_outputs": ["model"]})
EVALUATE = ("evaluate", {"model": "model", "X": "Xs_test", "y": "y_test", "_outputs": ["metrics"]})
WORKFLOW = [LOAD, SPLIT, SCALE, TRAIN, EVALUATE]
TASK = "Train and evaluate a classifier on the breast_cancer dataset."


@pytest.fixture
def llm() -> Any:
    with FakeOpenAI() as server:
        yield server


def proposer(llm: FakeOpenAI, timeout_s: float = 10.0) -> OpenAIProposer:
    return OpenAIProposer(
        "fake-model", llm.base_url, api_key=SECRET, timeout_s=timeout_s, http_retries=0
    )


def script(llm: FakeOpenAI, *calls: tuple[str, Any]) -> None:
    for name, arguments in calls:
        llm.tool(name, arguments)


def agent(llm: FakeOpenAI, store: Path, **kwargs: Any) -> AgentOutcome:
    timeout = kwargs.pop("timeout_s", 10.0)
    return run_agent(TASK, proposer(llm, timeout), store=store, seed=42, name="agent", **kwargs)


def rows(store: Path, sql: str, *params: Any) -> list[dict[str, Any]]:
    con = connect(store)
    table = con.execute(sql, list(params))
    names = [d[0] for d in table.description]
    return [dict(zip(names, row, strict=True)) for row in table.fetchall()]


def test_breast_cancer_workflow_proposed_end_to_end(llm: FakeOpenAI, store: Path) -> None:
    script(llm, *WORKFLOW)
    llm.text("Done: logistic regression evaluated.")
    outcome = agent(llm, store)

    assert outcome.status == "succeeded", outcome.reason
    assert [r.action for r in outcome.results] == [c[0] for c in WORKFLOW]
    assert len(llm.requests) == 6
    first = llm.requests[0]
    assert first["temperature"] == 0
    assert first["seed"] == 42
    assert first["model"] == "fake-model"
    tools = {t["function"]["name"]: t["function"]["parameters"] for t in first["tools"]}
    assert "python" not in tools  # the escape hatch is never offered to an agent
    assert "_outputs" in tools["split"]["properties"]
    assert tools["split"]["properties"]["data"]["x-rlam-input"] is True
    # the model saw each result before proposing the next step
    last = llm.requests[-1]["messages"][-1]
    assert last["role"] == "tool"
    assert last["content"].startswith("ok: step 5 evaluate")
    assert "accuracy" in last["content"]

    steps = rows(store, "SELECT * FROM steps ORDER BY seq")
    assert [s["status"] for s in steps] == ["succeeded"] * 5
    assert {s["origin"] for s in steps} == {"agent"}
    calls = rows(store, "SELECT * FROM llm_calls ORDER BY turn")
    assert [c["turn"] for c in calls] == [1, 2, 3, 4, 5, 6]
    assert all(s["proposed_by"] == calls[i]["call_id"] for i, s in enumerate(steps))
    edges = rows(store, "SELECT src, dst FROM edges WHERE type = 'proposed_by' ORDER BY src")
    assert [(e["src"], e["dst"]) for e in edges] == [
        (s["step_id"], s["proposed_by"]) for s in steps
    ]
    attributes = json.loads(calls[0]["attributes"])
    assert attributes["gen_ai.request.model"] == "fake-model"
    assert attributes["gen_ai.request.seed"] == 42
    assert attributes["gen_ai.request.temperature"] == 0
    assert attributes["gen_ai.response.id"] == "chatcmpl-fake-1"
    assert attributes["gen_ai.usage.output_tokens"] == 7
    assert attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert attributes["server.address"] == "127.0.0.1"
    assert calls[0]["base_url"] == llm.base_url
    assert calls[-1]["finish_reason"] == "stop"
    assert json.loads(calls[0]["request"])["messages"][-1]["content"] == TASK
    run = rows(store, "SELECT status FROM runs")[0]
    assert run["status"] == "succeeded"


def test_api_key_never_reaches_the_store(llm: FakeOpenAI, store: Path) -> None:
    script(llm, LOAD)
    llm.text("done")
    agent(llm, store)
    assert llm.headers[0]["authorization"] == f"Bearer {SECRET}"  # it was really sent
    for path in store.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_malformed_tool_call_then_corrected_is_a_recorded_retry(
    llm: FakeOpenAI, store: Path
) -> None:
    script(llm, LOAD)
    llm.tool("split", '{"data": "data", "test_size": 0.25,')  # truncated JSON
    script(llm, SPLIT)
    llm.text("done")
    outcome = agent(llm, store)

    assert outcome.status == "succeeded", outcome.reason
    steps = rows(store, "SELECT * FROM steps ORDER BY seq")
    assert [s["status"] for s in steps] == ["succeeded", "rejected", "succeeded"]
    assert "not valid JSON" in steps[1]["error_message"]
    assert steps[1]["proposed_by"] is not None  # the refusal is linked to its LLM call
    assert steps[2]["recovers"] == steps[1]["step_id"]
    feedback = llm.requests[2]["messages"][-1]
    assert feedback["role"] == "tool"
    assert feedback["content"].startswith("rejected:")
    assert "not valid JSON" in feedback["content"]
    recovers = rows(store, "SELECT src, dst FROM edges WHERE type = 'recovers'")
    assert recovers == [{"src": steps[2]["step_id"], "dst": steps[1]["step_id"]}]


def test_out_of_range_parameter_rejected_then_fixed(llm: FakeOpenAI, store: Path) -> None:
    bad_train = ("train_model", {**TRAIN[1], "C": -3.0})
    script(llm, LOAD, SPLIT, SCALE, bad_train, TRAIN, EVALUATE)
    llm.text("done")
    outcome = agent(llm, store)

    assert outcome.status == "succeeded"
    statuses = [(r.action, r.status) for r in outcome.results]
    assert statuses[3:5] == [("train_model", "rejected"), ("train_model", "succeeded")]
    told = llm.requests[4]["messages"][-1]["content"]
    assert "C=-3.0: Input should be greater than 0" in told
    assert outcome.results[4].recovers == outcome.results[3].step_id


INJECTIONS = [
    ("__import__", {"name": "os"}, "unknown tool"),
    ("load_dataset", {"name": "__import__('os').system('touch PWNED')"}, "name="),
    ("load_dataset", {"name": "iris", "__import__": "os"}, "unknown parameter '__import__'"),
    ("describe", {"data": "__import__('os').system('touch PWNED')"}, "is an input"),
    ("describe", {"data": "__import__"}, "no earlier step"),
    ("load_dataset", {"name": "iris", "_outputs": ["__builtins__"]}, "not a usable name"),
    ("python", {"source": "__import__('os').system('touch PWNED')"}, "not offered to agents"),
]


@pytest.mark.parametrize(("tool", "arguments", "reason"), INJECTIONS)
def test_injected_code_in_arguments_is_rejected(
    llm: FakeOpenAI,
    store: Path,
    tmp_path: Path,
    tool: str,
    arguments: Any,
    reason: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    llm.tool(tool, arguments)
    llm.text("done")
    outcome = agent(llm, store)

    assert outcome.results[0].status == "rejected"
    assert outcome.results[0].error is not None
    assert reason in outcome.results[0].error.message
    assert outcome.status == "failed"  # the refusal was never answered by a success
    assert not (tmp_path / "PWNED").exists()


def test_code_in_a_free_text_parameter_is_only_data(
    llm: FakeOpenAI, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    script(llm, LOAD)
    llm.tool(
        "filter_rows",
        {"data": "data", "column": "__import__('os').system('touch PWNED')", "op": ">", "value": 1},
    )
    llm.text("done")
    outcome = agent(llm, store)
    failed = outcome.results[1]
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.type == "KeyError"
    assert "is not in the data" in failed.error.message
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    ("trouble", "kind", "words"),
    [
        (lambda llm: llm.status(500, "boom"), "http_500", "HTTP 500"),
        (lambda llm: llm.status(429, "slow down"), "http_429", "rate limiting"),
        (lambda llm: llm.hang(3.0), "timeout", "did not answer within 1 s"),
        (lambda llm: llm.close_connection(), "connection", "could not talk to"),
    ],
)
def test_endpoint_trouble_is_a_clear_error_and_the_trace_stays_intact(
    llm: FakeOpenAI, store: Path, trouble: Any, kind: str, words: str
) -> None:
    script(llm, LOAD, SPLIT)
    trouble(llm)
    outcome = agent(llm, store, timeout_s=1.0)

    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error.kind == kind
    assert words in str(outcome.error)
    assert words in outcome.reason
    steps = rows(store, "SELECT seq, status FROM steps ORDER BY seq")
    assert [(s["seq"], s["status"]) for s in steps] == [(1, "succeeded"), (2, "succeeded")]
    calls = rows(store, "SELECT turn, error FROM llm_calls ORDER BY turn")
    assert [c["turn"] for c in calls] == [1, 2, 3]
    assert calls[2]["error"].startswith(kind)
    assert rows(store, "SELECT status FROM runs")[0]["status"] == "failed"
    assert rows(store, "SELECT count(*) AS n FROM journal_problems")[0]["n"] == 0


def test_endpoint_down_from_the_start(store: Path) -> None:
    server = FakeOpenAI().start()
    url = server.base_url
    server.stop()
    outcome = run_agent(TASK, OpenAIProposer("m", url, api_key="x", http_retries=0), store=store)
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error.kind == "connection"
    assert rows(store, "SELECT count(*) AS n FROM llm_calls")[0]["n"] == 1


def test_replay_and_verify_of_an_agent_run_never_call_the_llm(llm: FakeOpenAI, store: Path) -> None:
    from rlam_jupyter.operations.replay import replay

    script(llm, *WORKFLOW)
    llm.text("done")
    outcome = agent(llm, store)
    assert outcome.ok
    asked = len(llm.requests)
    llm.stop()
    assert not llm.accepts_connections()

    restored = replay(outcome.run_id, store=store, namespace={})
    verified = replay(outcome.run_id, verify=True, store=store, namespace={})

    assert len(llm.requests) == asked  # zero HTTP requests while replaying
    assert restored.ok
    assert set(restored.values) >= {"data", "model", "metrics"}
    assert verified.ok
    assert verified.counts["identical"] == 5
    assert rows(store, "SELECT count(*) AS n FROM llm_calls")[0]["n"] == asked


def test_no_content_records_hashes_only(llm: FakeOpenAI, store: Path) -> None:
    script(llm, LOAD)
    llm.text("done")
    agent(llm, store, record_content=False)
    calls = rows(store, "SELECT * FROM llm_calls ORDER BY turn")
    assert all(c["request"] is None and c["response"] is None for c in calls)
    assert all(len(c["request_hash"]) == 64 and len(c["response_hash"]) == 64 for c in calls)
    assert json.loads(calls[0]["attributes"])["rlam.content_recorded"] is False
    for path in store.rglob("*"):
        if path.is_file():
            assert TASK.encode() not in path.read_bytes()


def test_an_endless_model_is_stopped_by_the_step_budget(llm: FakeOpenAI, store: Path) -> None:
    script(llm, LOAD)
    for _ in range(10):
        llm.tool("describe", {"data": "data", "_outputs": ["summary"]})
    outcome = agent(llm, store, limits=AgentLimits(max_steps=4))
    assert outcome.status == "stopped (budget)"
    assert "budget of 4 step(s)" in outcome.reason
    assert len(outcome.results) == 4
    assert len(llm.requests) == 4
    assert rows(store, "SELECT status FROM runs")[0]["status"] == "stopped (budget)"


def test_retries_per_step_are_bounded(llm: FakeOpenAI, store: Path) -> None:
    script(llm, LOAD)
    for _ in range(5):
        llm.tool("split", {"data": "data", "test_size": 7})
    outcome = agent(llm, store, limits=AgentLimits(max_retries=2))
    assert outcome.status == "failed"
    assert "after 2 retries" in outcome.reason
    assert [r.status for r in outcome.results] == ["succeeded"] + ["rejected"] * 3
    assert len(llm.requests) == 4


def test_parallel_tool_calls_after_a_failure_are_refused_not_lost(
    llm: FakeOpenAI, store: Path
) -> None:
    llm.tool("load_dataset", {"name": "nope"}, SPLIT)
    script(llm, LOAD, SPLIT)
    llm.text("done")
    outcome = agent(llm, store)
    statuses = [r.status for r in outcome.results]
    assert statuses == ["rejected", "rejected", "succeeded", "succeeded"]
    _first, second = outcome.results[:2]
    assert second.error is not None
    assert "no earlier step" in second.error.message
    assert outcome.status == "succeeded"


def test_approval_required_without_anyone_to_approve_is_refused_clearly(
    llm: FakeOpenAI, store: Path
) -> None:
    script(llm, LOAD)
    llm.text("done")
    outcome = agent(llm, store, approve=True)
    refused = outcome.results[0]
    assert refused.status == "rejected"
    assert refused.error is not None
    assert "requires approval" in refused.error.message
    assert "non-interactive" in refused.error.message


def test_approver_decisions_are_recorded(llm: FakeOpenAI, store: Path) -> None:
    decisions = iter(
        [
            Decision(False, "use the iris data instead"),
            Decision(True, "", edited_params={"name": "iris"}),
        ]
    )
    script(llm, LOAD, LOAD)
    llm.text("done")
    engine = Engine(store)
    outcome = run_agent(
        TASK,
        proposer(llm),
        engine=engine,
        approve=True,
        approver=lambda checked: next(decisions),
    )
    assert [r.status for r in outcome.results] == ["rejected", "succeeded"]
    told = llm.requests[1]["messages"][-1]["content"]
    assert "rejected by user: use the iris data instead" in told
    approvals = rows(store, "SELECT * FROM approvals ORDER BY decided_at")
    assert [a["decision"] for a in approvals] == ["rejected", "approved"]
    assert json.loads(approvals[1]["edited_params"]) == {"name": "iris"}
    step = rows(store, "SELECT params FROM steps WHERE seq = 2")[0]
    assert json.loads(step["params"]) == {"name": "iris"}
    assert engine.approver is None
    assert not engine.policy.require_approval
