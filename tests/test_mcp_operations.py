"""The run operations as MCP tools (``rlam_fork``, ``rlam_diff``, ``rlam_audit``,
``rlam_replay``) on a real ``rlam mcp`` subprocess, driven by the SDK's stdio client:
a fork changes a parameter and a diff names it; the audit of a run with a refusal and a
failure with its recovery scores Trace Completeness 1.0 and Failure Visibility 1; bad
arguments are tool errors naming the problem; an action named like a run tool stops the
server from starting."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp_types import CallToolResult

from tests.rlam_process import run_rlam

FAILING_ACTION = '''
from rlam_jupyter import action

@action
def halve(x: int) -> int:
    """Half of an even x; an odd one fails, as a real step can."""
    if x % 2:
        raise ValueError(f"x={x} is odd")
    return x // 2
'''
ACTIONS = ["--actions", "halving.py"]
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("load_dataset", {"name": "iris", "_outputs": ["data"]}),
    ("split", {"data": "data", "test_size": 0.3, "_outputs": ["X_train", "X_test", "y", "t"]}),
    ("split", {"data": "data", "test_size": "big"}),  # refused
    ("halve", {"x": 3}),  # fails
    ("halve", {"x": 4}),  # its recovery
    ("rlam_fork", {"run": "ops", "at": 2, "params": {"test_size": 0.5}, "name": "ops-half"}),
    ("rlam_diff", {"a": "ops", "b": "ops-half"}),
    ("rlam_audit", {"run": "ops", "reproduce": True}),
    ("rlam_replay", {"run": "ops"}),
]
BAD_CALLS: list[tuple[str, Any, str]] = [
    ("rlam_fork", {"run": "ops"}, "rlam_fork: the argument 'at' is required"),
    ("rlam_fork", {"run": "ops", "at": 99}, "has no step 99; its steps are 1..5"),
    ("rlam_fork", {"run": "ops", "at": 2, "params": "big"}, "params='big' is not object"),
    ("rlam_fork", {"run": "ops", "at": 2, "params": {"test_size": 7}}, "test_size=7"),
    ("rlam_diff", {"a": "ops", "b": "nosuch"}, "no run 'nosuch'"),
    ("rlam_audit", {"reproduce": "yes"}, "rlam_audit: reproduce='yes' is not boolean"),
    ("rlam_replay", {"run": "ops", "verify": False}, "unknown argument 'verify'"),
]


def serve(root: Path, calls: list[tuple[str, Any]]) -> list[CallToolResult]:
    (root / "halving.py").write_text(FAILING_ACTION)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "rlam_jupyter", "mcp", "--store", ".rlam", "--run", "ops", *ACTIONS],
        env={k: v for k, v in os.environ.items() if k != "RLAM_HOME"},
        cwd=str(root),
    )

    async def drive() -> list[CallToolResult]:
        async with Client(params, read_timeout_seconds=300) as client:
            return [await client.call_tool(name, arguments) for name, arguments in calls]

    return anyio.run(drive)


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> list[CallToolResult]:
    return serve(tmp_path_factory.mktemp("mcp-ops"), CALLS + [c[:2] for c in BAD_CALLS])


def content(result: CallToolResult) -> Any:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def test_a_fork_changes_a_parameter_and_the_diff_names_it(answers: list[Any]) -> None:
    fork, changes = content(answers[5]), content(answers[6])
    assert fork["name"] == "ops-half"
    assert fork["at"] == 2
    assert fork["steps"][0]["status"] == "succeeded"
    assert fork["steps"][0]["outputs"] != content(answers[1])["outputs"]
    step_two = next(row for row in changes["steps"] if row["seq"] == 2)
    assert any("test_size" in d and "0.5" in d for d in step_two["differences"]), step_two


def test_the_audit_of_a_run_with_a_refusal_and_a_failure(answers: list[Any]) -> None:
    report = content(answers[7])
    (run,) = report["runs"]
    assert run["name"] == "ops"
    assert run["trace_completeness"] == 1.0
    assert run["failure_visibility"] == 1.0
    assert run["missing"] == []
    failures = {f["status"]: f for f in report["failures"]}
    assert set(failures) == {"rejected", "failed"}
    assert failures["failed"]["message"] == "x=3 is odd"
    assert failures["failed"]["recovered_by"]
    assert all(f["visible"] for f in report["failures"])


def test_replay_through_the_tool_verifies_the_run(answers: list[Any]) -> None:
    report = content(answers[8])
    assert report["verified"]
    assert report["ok"]
    assert report["counts"]["identical"] == 4


@pytest.mark.parametrize(("index", "expected"), [(i, c[2]) for i, c in enumerate(BAD_CALLS)])
def test_bad_arguments_are_tool_errors_naming_the_problem(
    answers: list[Any], index: int, expected: str
) -> None:
    answer = answers[len(CALLS) + index]
    assert answer.is_error
    assert expected in answer.content[0].text


def test_an_action_named_like_a_run_tool_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "clash.py").write_text(
        "from rlam_jupyter import action\n\n@action\ndef rlam_runs(x: int) -> int:\n"
        '    """Shadows the run tool."""\n    return x\n'
    )
    result = run_rlam("mcp", "--actions", "clash.py", cwd=tmp_path)
    assert result.returncode != 0
    assert "the action 'rlam_runs' (clash.rlam_runs)" in result.stderr
    assert "run tool 'rlam_runs'" in result.stderr
