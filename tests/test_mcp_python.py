"""The ``python`` escape hatch over MCP: a tool only with ``rlam mcp --allow-python``, and
then every call waits for the user's approval (the SDK client's elicitation form), even
under ``--approve none``. An approved cell runs as one recorded step whose outputs feed
the next action call; a rejected one runs nothing; the run replays and verifies in a
fresh process. Without the flag the tool is absent and a call is a recorded refusal
naming the flag."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from rlam_jupyter.store.catalog import connect
from tests.rlam_process import run_rlam, verified_replay
from tests.test_mcp import marker_code, serve
from tests.test_mcp_approval import answer, drive, text

HEAD = {
    "source": "small = data.head(20)\n",
    "inputs": ["data"],
    "_outputs": ["small"],
    "pure": True,
}


def python_calls(marker: Path) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("load_dataset", {"name": "iris", "_outputs": ["data"]}),
        ("python", HEAD),  # approved
        ("describe", {"data": "small", "_outputs": ["summary"]}),  # reads its output
        ("python", {"source": marker_code(marker)}),  # rejected
        ("python", {"source": "x = (", "_outputs": ["x"]}),  # refused before any form
        (
            "python",
            {
                "source": "tail = df.tail(5)",
                "inputs": {"df": "data"},
                "_outputs": ["tail"],
                "pure": True,
            },
        ),
    ]


def tool_list(root: Path, *options: str) -> list[types.Tool]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "rlam_jupyter", "mcp", "--store", ".rlam", *options],
        env={k: v for k, v in os.environ.items() if k != "RLAM_HOME"},
        cwd=str(root),
    )

    async def listing() -> list[types.Tool]:
        async with Client(params, read_timeout_seconds=120) as client:
            return (await client.list_tools()).tools

    return anyio.run(listing)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_every_python_call_waits_for_approval_and_an_approved_one_feeds_the_next(
    tmp_path: Path, mode: str
) -> None:
    store, marker = tmp_path / ".rlam", tmp_path / "ran"
    answers = [
        answer(decision="approve", source="small = 'edited'"),  # the code is not editable
        answer(decision="reject", reason="no files written from here"),
        answer(decision="approve"),
    ]
    results, forms = drive(store, python_calls(marker), answers, "--allow-python", mode=mode)

    assert [r.is_error for r in results] == [False, False, False, True, True, False]
    assert len(forms) == 3  # --approve none: only the python calls asked, the bad one not
    first = forms[0]
    assert isinstance(first, types.ElicitRequestFormParams)
    assert "%%rlam python --inputs data --outputs small --pure" in first.message
    assert "small = data.head(20)" in first.message
    assert "source" not in first.requested_schema["properties"]
    assert "--inputs df=data --outputs tail --pure" in forms[2].message
    assert "rejected by approving-client: no files written from here" in text(results[3])
    assert "does not compile" in text(results[4])
    assert not marker.exists()  # the rejected code never ran

    con = connect(store)
    steps = con.sql(
        "SELECT action, status, determinism, inputs, outputs, origin FROM steps ORDER BY seq"
    ).fetchall()
    assert [(s[0], s[1]) for s in steps] == [
        ("load_dataset", "succeeded"),
        ("python", "succeeded"),
        ("describe", "succeeded"),
        ("python", "rejected"),
        ("python", "rejected"),
        ("python", "succeeded"),
    ]
    assert {s[5] for s in steps} == {"mcp"}
    assert (steps[1][2], steps[5][2]) == ("pure", "pure")
    head = results[1].structured_content
    assert head is not None
    assert head["outputs"][0]["name"] == "small"
    assert head["outputs"][0]["preview"].startswith("DataFrame (20, 5)")
    assert json.loads(steps[2][3]) == {"data": head["outputs"][0]["hash"]}  # describe read it
    loaded = results[0].structured_content
    assert loaded is not None
    assert json.loads(steps[5][3]) == {"df": loaded["outputs"][0]["hash"]}  # renamed input
    approvals = con.sql(
        "SELECT a.decision, a.reason, a.edited_params FROM approvals a "
        "JOIN steps s USING (step_id) ORDER BY s.seq"
    ).fetchall()
    assert approvals == [
        ("approved", "", None),
        ("rejected", "no files written from here", None),
        ("approved", "", None),
    ]

    report = verified_replay("r", store)
    # load_dataset, describe and both cells, rebuilt from their recorded source
    assert report["counts"] == {"identical": 4, "skipped (rejected)": 2}


def test_an_external_cell_is_restored_on_replay_and_named_as_not_reexecuted(
    tmp_path: Path,
) -> None:
    store = tmp_path / ".rlam"
    calls = [
        ("load_dataset", {"name": "iris", "_outputs": ["data"]}),
        ("python", {"source": "n = len(data)", "inputs": ["data"], "_outputs": ["n"]}),
    ]
    results, _forms = drive(store, calls, [answer(decision="approve")], "--allow-python")
    assert [r.is_error for r in results] == [False, False]
    restored = run_rlam("replay", "r", "--store", str(store), "--json")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert json.loads(restored.stdout)["restored_names"] == ["data", "n"]
    verified = run_rlam("replay", "r", "--verify", "--store", str(store), "--json")
    report = json.loads(verified.stdout)
    assert report["counts"] == {"identical": 1, "skipped (external)": 1}
    assert verified.returncode != 0  # an external step is never counted as reproduced


def test_a_client_without_elicitation_cannot_run_python_even_under_approve_none(
    tmp_path: Path,
) -> None:
    store, marker = tmp_path / ".rlam", tmp_path / "ran"
    calls = [("python", {"source": marker_code(marker)})]
    results, _forms = drive(store, calls, None, "--allow-python", "--approve", "none")
    assert results[0].is_error
    message = text(results[0])
    assert "every python call needs approval (--allow-python)" in message
    assert "offers no elicitation" in message
    assert not marker.exists()
    assert connect(store).sql("SELECT status FROM steps").fetchall() == [("rejected",)]


def test_python_is_a_destructive_tool_only_with_the_flag(tmp_path: Path) -> None:
    offered = {t.name: t for t in tool_list(tmp_path, "--allow-python")}
    python = offered["python"]
    assert python.annotations is not None
    assert python.annotations.destructive_hint is True
    assert python.annotations.read_only_hint is False
    assert python.input_schema["required"] == ["source"]
    assert set(python.input_schema["properties"]) == {"source", "inputs", "_outputs", "pure"}
    assert "python" not in {t.name for t in tool_list(tmp_path)}


def test_without_the_flag_a_python_call_is_refused_naming_it(tmp_path: Path) -> None:
    store, marker = tmp_path / ".rlam", tmp_path / "ran"
    session = serve(store, "plain", [("python", {"source": marker_code(marker)})])
    assert "python" not in {t.name for t in session.tools}
    refused = session.results[0]
    assert refused.is_error
    message = refused.content[0].text  # type: ignore[union-attr]
    assert "unknown tool 'python'" in message
    assert "rlam mcp --allow-python" in message
    assert not marker.exists()
    assert connect(store).sql("SELECT action, status FROM steps").fetchall() == [
        ("python", "rejected")
    ]


def test_an_action_named_python_stops_the_server_with_the_flag(tmp_path: Path) -> None:
    (tmp_path / "clash.py").write_text(
        "from rlam_jupyter import action\n\n@action\ndef python(x: int) -> int:\n"
        '    """Shadows the escape hatch."""\n    return x\n'
    )
    result = run_rlam("mcp", "--allow-python", "--actions", "clash.py", cwd=tmp_path)
    assert result.returncode != 0
    assert "the action 'python' (clash.python)" in result.stderr
    assert "--allow-python" in result.stderr


def test_a_fork_cannot_swap_the_code_of_a_recorded_cell(tmp_path: Path) -> None:
    """rlam_fork re-proposes a step with parameter overrides; a cell's code is its only
    parameter, so an override would run unreviewed code (and with no flag at all)."""
    store, marker = tmp_path / ".rlam", tmp_path / "ran"
    calls = [
        ("load_dataset", {"name": "iris", "_outputs": ["data"]}),
        ("python", {"source": "n = len(data)", "inputs": ["data"], "_outputs": ["n"]}),
    ]
    drive(store, calls, [answer(decision="approve")], "--allow-python")
    swapped = {"run": "r", "at": 2, "params": {"source": marker_code(marker) + "\nn = 0"}}
    refused, kept = serve(
        store, "later", [("rlam_fork", swapped), ("rlam_fork", {"run": "r", "at": 2})]
    ).results
    assert refused.is_error
    assert "the code of a python step" in refused.content[0].text  # type: ignore[union-attr]
    assert not marker.exists()
    assert not kept.is_error  # the recorded code itself still forks
