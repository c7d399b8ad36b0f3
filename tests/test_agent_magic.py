"""``%%rlam agent`` in a real IPython shell, and human approval (console and widgets)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import StdinNotImplementedError, UsageError
from IPython.core.interactiveshell import InteractiveShell

from rlam_jupyter.engine import Engine
from rlam_jupyter.frontends.approval import NOBODY, ApprovalPanel, ConsoleApprover
from rlam_jupyter.frontends.kernel import session_of
from rlam_jupyter.frontends.magics.cell import StepFailedError
from rlam_jupyter.operations.agent import AgentLoop, AgentOutcome, PendingApproval, ScriptedProposer
from rlam_jupyter.store.catalog import connect
from tests.fake_openai import FakeOpenAI

SCRIPT = """
data = load_dataset(name="breast_cancer")
X_train, X_test, y_train, y_test = split(data=data, test_size=0.25)
model = train_model(X=X_train, y=y_train, max_iter=5000)
metrics = evaluate(model=model, X=X_test, y=y_test)
"""


def statuses(store: Path, run: str) -> list[str]:
    con = connect(store)
    return [
        r[0]
        for r in con.execute(
            "SELECT s.status FROM steps s JOIN runs r USING (run_id) WHERE r.name = ? ORDER BY seq",
            [run],
        ).fetchall()
    ]


def test_scripted_agent_cell_binds_outputs(shell: InteractiveShell, tmp_path: Path) -> None:
    shell.run_cell_magic("rlam", "agent --run demo --seed 7", SCRIPT)
    assert shell.user_ns["metrics"]["accuracy"] > 0.9
    assert statuses(tmp_path / ".rlam", "demo") == ["succeeded"] * 4
    con = connect(tmp_path / ".rlam")
    run = con.execute("SELECT status, seed FROM runs WHERE name = 'demo'").fetchone()
    assert run == ("succeeded", 7)
    providers = {r[0] for r in con.execute("SELECT provider FROM llm_calls").fetchall()}
    assert providers == {"scripted"}


def test_scripted_json_with_a_recovery_rule(shell: InteractiveShell, tmp_path: Path) -> None:
    script = {
        "steps": [
            {"action": "load_dataset", "params": {"name": "iris"}, "targets": ["data"]},
            {
                "action": "select_columns",
                "params": {"columns": ["no such column"]},
                "inputs": {"data": "data"},
                "targets": ["some"],
            },
        ],
        "recover": {
            "select_columns": [
                {
                    "action": "select_columns",
                    "params": {"columns": ["sepal length (cm)"]},
                    "inputs": {"data": "data"},
                    "targets": ["some"],
                }
            ]
        },
    }
    shell.run_cell_magic("rlam", "agent --run rec", json.dumps(script))
    assert list(shell.user_ns["some"].columns) == ["sepal length (cm)"]
    assert statuses(tmp_path / ".rlam", "rec") == ["succeeded", "failed", "succeeded"]
    con = connect(tmp_path / ".rlam")
    (recovers,) = con.execute("SELECT recovers FROM steps WHERE seq = 3").fetchone()
    (failed,) = con.execute("SELECT step_id FROM steps WHERE seq = 2").fetchone()
    assert recovers == failed


def test_a_failed_agent_run_raises_after_recording(shell: InteractiveShell, tmp_path: Path) -> None:
    body = 'data = load_dataset(name="iris")\ndescribe(data=data)\ndescribe(data=data)'
    with pytest.raises(StepFailedError, match=r"stopped \(budget\)"):
        shell.run_cell_magic("rlam", "agent --run small --max-steps 2", body)
    assert statuses(tmp_path / ".rlam", "small") == ["succeeded", "succeeded"]


def test_openai_provider_through_the_magic(
    shell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-magic-secret")
    with FakeOpenAI() as llm:
        llm.tool("load_dataset", {"name": "wine", "_outputs": ["wine"]})
        llm.text("loaded")
        shell.run_cell_magic(
            "rlam",
            f"agent --provider openai --model tiny --base-url {llm.base_url} --run llm --seed 3",
            "Load the wine data.",
        )
        assert llm.requests[0]["messages"][-1]["content"] == "Load the wine data."
        assert llm.requests[0]["seed"] == 3
    assert len(shell.user_ns["wine"]) == 178
    con = connect(tmp_path / ".rlam")
    assert con.execute("SELECT model FROM llm_calls LIMIT 1").fetchone() == ("tiny",)


def test_bad_options_are_usage_errors(shell: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="invalid choice"):
        shell.run_cell_magic("rlam", "agent --provider nope", "x")
    with pytest.raises(UsageError, match="max_steps must be >= 1"):
        shell.run_cell_magic("rlam", "agent --max-steps 0", 'load_dataset(name="iris")')
    with pytest.raises(UsageError, match="cell command"):
        shell.run_line_magic("rlam", "agent")
    with pytest.raises(UsageError, match="unknown action"):
        shell.run_cell_magic("rlam", "agent", "x = nothing()")


def test_approve_without_a_person_refuses_clearly(shell: InteractiveShell, tmp_path: Path) -> None:
    with pytest.raises(StepFailedError, match="failed"):
        shell.run_cell_magic("rlam", "agent --approve --run gated", 'load_dataset(name="iris")')
    con = connect(tmp_path / ".rlam")
    reason, decision = con.execute(
        "SELECT s.error_message, a.decision FROM steps s JOIN approvals a USING (step_id)"
    ).fetchone()
    assert decision == "rejected"
    assert "nobody can approve here" in reason
    assert "data" not in shell.user_ns


def test_console_approver_answers() -> None:
    from rlam_jupyter.actions.default_registry import registry
    from rlam_jupyter.actions.proposal import Proposal, check

    checked = check(Proposal("load_dataset", {"name": "iris"}), registry(), {})
    assert ConsoleApprover(lambda _p: "y")(checked).approved
    no = ConsoleApprover(lambda _p: "n too big")(checked)
    assert not no.approved
    assert no.reason == "too big"
    edit = ConsoleApprover(lambda _p: 'e name="wine"')(checked)
    assert edit.approved
    assert edit.edited_params == {"name": "wine"}

    def no_stdin(_prompt: str) -> str:
        raise StdinNotImplementedError(
            "raw_input was called, but this frontend does not support input requests."
        )

    refused = ConsoleApprover(no_stdin)(checked)
    assert not refused.approved
    assert refused.reason == NOBODY


def test_widget_approval_pauses_and_resumes_on_click(store: Path) -> None:
    engine = Engine(store)
    run = engine.start_run("widget", 0)
    proposer = ScriptedProposer.from_text(
        'data = load_dataset(name="iris")\nsummary = describe(data=data)', engine.registry
    )
    loop = AgentLoop(engine, run, proposer, task="t", approve=True, approval="widget")
    first = loop.run()
    assert isinstance(first, PendingApproval)
    assert first.proposal.action == "load_dataset"
    assert engine.executions == 0  # nothing ran while waiting

    outcomes: list[Any] = []
    panel = ApprovalPanel(first.proposal, lambda d: outcomes.append(loop.resume(d)))
    panel.fields["name"].value = '"wine"'
    panel.approve_button.click()
    second = outcomes[-1]
    assert isinstance(second, PendingApproval)
    assert second.proposal.action == "describe"

    panel2 = ApprovalPanel(second.proposal, lambda d: outcomes.append(loop.resume(d)))
    panel2.reason.value = "not needed"
    panel2.reject_button.click()
    panel2.reject_button.click()  # a second click does nothing
    done = outcomes[-1]
    assert isinstance(done, AgentOutcome)
    assert [r.status for r in done.results] == ["succeeded", "rejected"]
    assert done.status == "failed"  # the refusal was never answered
    con = connect(store)
    rows = con.execute(
        "SELECT decision, reason, edited_params FROM approvals ORDER BY decided_at"
    ).fetchall()
    assert rows == [("approved", "", '{"name": "wine"}'), ("rejected", "not needed", None)]
    assert len(outcomes) == 2


def test_session_keeps_the_agent_run(shell: InteractiveShell) -> None:
    shell.run_cell_magic("rlam", "agent --run kept", 'data = load_dataset(name="iris")')
    session = session_of(shell)
    assert session.runs["kept"].status == "succeeded"
    assert len(shell.user_ns["data"]) == 150
    shell.run_line_magic("rlam", "replay kept")  # the agent run is an ordinary run
