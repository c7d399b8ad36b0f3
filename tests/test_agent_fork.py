"""Forking an agent run: the agent is re-asked only from the fork point on, with the
recorded conversation; or the fork takes the user's overrides and asks no one."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlam_jupyter.engine import Engine
from rlam_jupyter.errors import RlamError
from rlam_jupyter.operations.agent import ScriptedProposer, run_agent
from rlam_jupyter.operations.agent.fork import fork_agent
from rlam_jupyter.operations.agent.openai_provider import OpenAIProposer
from rlam_jupyter.operations.replay import replay
from rlam_jupyter.store.catalog import connect
from tests.fake_openai import FakeOpenAI
from tests.test_agent import TASK, WORKFLOW, script


def recorded_run(store: Path) -> tuple[str, list[dict[str, object]]]:
    with FakeOpenAI() as llm:
        script(llm, *WORKFLOW)
        llm.text("done")
        outcome = run_agent(
            TASK,
            OpenAIProposer("m", llm.base_url, api_key="k", http_retries=0),
            store=store,
            seed=5,
            name="parent",
        )
        assert outcome.ok
        return outcome.run_id, llm.requests


def test_fork_re_asks_the_agent_from_the_fork_point_only(store: Path) -> None:
    parent_id, parent_requests = recorded_run(store)
    with FakeOpenAI() as llm:
        llm.tool(
            "train_model",
            {"X": "Xs_train", "y": "y_train", "model": "random_forest", "_outputs": ["model"]},
        )
        llm.tool("evaluate", {"model": "model", "X": "Xs_test", "y": "y_test", "_outputs": ["m"]})
        llm.text("random forest evaluated")
        engine = Engine(store)
        outcome = fork_agent(
            parent_id,
            4,
            OpenAIProposer("m", llm.base_url, api_key="k", http_retries=0),
            engine=engine,
        )
        assert outcome.ok, outcome.reason
        assert len(llm.requests) == 3  # turns 4, 5 and the final answer; none before
        # the agent continued the conversation it had when it proposed step 4
        assert llm.requests[0]["messages"] == parent_requests[3]["messages"]
        assert llm.requests[0]["seed"] == 5

    assert [(r.seq, r.action) for r in outcome.results] == [(4, "train_model"), (5, "evaluate")]
    assert engine.executions == 2  # steps 1-3 are shared, not re-run
    con = connect(store)
    fork = con.execute(
        "SELECT parent_run_id, fork_seq, status FROM runs WHERE run_id = ?", [outcome.run_id]
    ).fetchone()
    assert fork == (parent_id, 4, "succeeded")
    seqs = [r[0] for r in con.execute("SELECT seq FROM run_steps(?)", [outcome.run_id]).fetchall()]
    assert seqs == [1, 2, 3, 4, 5]
    restored = replay(outcome.run_id, store=store, namespace={})
    assert restored.ok
    assert "m" in restored.values


def test_fork_with_overrides_asks_no_one(store: Path) -> None:
    parent_id, _ = recorded_run(store)
    report = fork_agent(parent_id, 4, params={"C": 0.5}, store=store)
    assert [r.status for r in report.results] == ["succeeded", "succeeded"]


def test_fork_needs_a_recorded_conversation(store: Path) -> None:
    proposer = ScriptedProposer([{"action": "load_dataset", "params": {"name": "iris"}}])
    outcome = run_agent("t", proposer, store=store, record_content=False)
    with pytest.raises(RlamError, match="without content"):
        fork_agent(outcome.run_id, 1, proposer, store=store)
    with pytest.raises(RlamError, match="needs a proposer"):
        fork_agent(outcome.run_id, 1, store=store)


def test_fork_of_a_hand_written_step_is_refused(store: Path) -> None:
    from rlam_jupyter.actions.proposal import Proposal

    engine = Engine(store)
    run = engine.start_run("hand", 0)
    engine.execute(run, Proposal("load_dataset", {"name": "iris"}, targets=("data",)))
    engine.end_run(run)
    with pytest.raises(RlamError, match="not proposed by an agent"):
        fork_agent(run.run_id, 1, ScriptedProposer([]), engine=engine)


def test_fork_from_the_magic(shell: object, tmp_path: Path) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    assert isinstance(shell, InteractiveShell)
    body = (
        'data = load_dataset(name="iris")\n'
        "X_train, X_test, y_train, y_test = split(data=data)\n"
        "model = train_model(X=X_train, y=y_train)\n"
    )
    shell.run_cell_magic("rlam", "agent --run base", body)
    forked = body.replace(
        "train_model(X=X_train, y=y_train)",
        'train_model(X=X_train, y=y_train, model="random_forest")',
    )
    shell.run_cell_magic("rlam", "agent --fork base --at 3 --run rf", forked)
    assert type(shell.user_ns["model"]).__name__ == "RandomForestClassifier"
    con = connect(tmp_path / ".rlam")
    row = con.execute("SELECT fork_seq, status FROM runs WHERE name = 'rf'").fetchone()
    assert row == (3, "succeeded")
