"""``rlam mcp`` driven as a subprocess by the official MCP SDK's own client over stdio:
the tools mirror the registry, every call is a recorded step (origin ``mcp``, the
client's name), refusals are tool errors and ``rejected`` steps, and the run replays
and verifies in a fresh process without any MCP client."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp_types import CallToolResult, Implementation, Tool

from rlam_jupyter.actions.default_registry import registry
from rlam_jupyter.actions.registry import Registry
from rlam_jupyter.operations.agent.tools import agent_tools
from rlam_jupyter.store.catalog import connect
from tests.rlam_process import verified_replay

CLIENT = Implementation(name="rlam-test-client", version="1.2.3")
LOAD = ("load_dataset", {"name": "iris", "_outputs": ["data"]})
SPLIT = (
    "split",
    {"data": "data", "test_size": 0.3, "_outputs": ["X_train", "X_test", "y_train", "y_test"]},
)


@dataclass
class Session:
    """What one server process answered: its tool list and each call's result."""

    tools: list[Tool]
    results: list[CallToolResult]


def serve(store: Path, run: str, calls: list[tuple[str, Any]]) -> Session:
    """Start ``rlam mcp`` for ``run``, list its tools, make ``calls`` in order, stop it."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "rlam_jupyter", "mcp", "--store", str(store), "--run", run, "--seed", "7"],
        env={k: v for k, v in os.environ.items() if k != "RLAM_HOME"},
        cwd=str(store.parent),
    )

    async def drive() -> Session:
        async with Client(params, client_info=CLIENT, read_timeout_seconds=120) as client:
            tools = (await client.list_tools()).tools
            results = [await client.call_tool(name, arguments) for name, arguments in calls]
            return Session(tools, results)

    return anyio.run(drive)


def marker_code(marker: Path) -> str:
    return f"__import__('pathlib').Path({str(marker)!r}).write_text('ran')"


@pytest.fixture(scope="module")
def driven(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Session, Session]:
    """Run ``first`` (valid calls and refusals), then run ``second`` (the same valid calls)."""
    root = tmp_path_factory.mktemp("mcp")
    store, marker = root / ".rlam", root / "smuggled"
    first = serve(
        store,
        "first",
        [
            LOAD,
            SPLIT,
            ("split", {"data": "data", "test_size": "big"}),  # wrong type
            ("split", {"data": "data", "test_size": 2.0}),  # out of range
            ("split", {"data": "nosuch"}),  # unknown input name
            ("split", {"data": marker_code(marker)}),  # code as an input name
            ("load_dataset", {"name": marker_code(marker)}),  # code as a parameter
            ("drop_database", {"everything": True}),  # unknown tool
            ("python", {"code": marker_code(marker)}),  # the escape hatch is no tool
        ],
    )
    second = serve(store, "second", [LOAD, SPLIT])
    return store, marker, first, second


def steps(store: Path, run: str) -> list[dict[str, Any]]:
    con = connect(store)
    run_id = con.execute("SELECT run_id FROM runs WHERE name = ?", [run]).fetchone()
    assert run_id is not None
    cursor = con.execute("SELECT * FROM steps WHERE run_id = ? ORDER BY seq", [run_id[0]])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_tools_are_the_registrys_actions_with_their_schemas(driven: Any) -> None:
    _, _, first, _ = driven
    by_name = {tool.name: tool for tool in first.tools}
    # the server process registers the built-in catalogue only: other tests of this
    # process may have added actions of their own to its registry
    catalogue = Registry()
    for spec in registry().values():
        if spec.func.__module__ == "rlam_jupyter.actions.catalogue":
            catalogue.add(spec)
    expected = {t["function"]["name"]: t["function"] for t in agent_tools(catalogue)}
    run_tools = {"rlam_runs", "rlam_steps", "rlam_step", "rlam_replay", "rlam_fork", "rlam_diff"}
    assert set(by_name) == set(expected) | run_tools | {"rlam_audit", "rlam_export"}
    assert "python" not in by_name
    for name, function in expected.items():
        spec, tool = registry()[name], by_name[name]
        assert tool.input_schema == function["parameters"]
        assert set(spec.json_schema()["properties"]) <= set(tool.input_schema["properties"])
        assert spec.signature() in (tool.description or "")
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is (spec.determinism == "pure")
        assert tool.annotations.idempotent_hint is (spec.determinism in ("pure", "seeded"))


def test_a_call_is_a_succeeded_step_whose_outputs_the_next_call_uses(driven: Any) -> None:
    store, _, first, _ = driven
    load, split = first.results[0], first.results[1]
    assert not load.is_error
    assert not split.is_error
    assert load.structured_content is not None
    assert split.structured_content is not None
    assert load.structured_content["status"] == "succeeded"
    assert split.structured_content["status"] == "succeeded"
    assert [o["name"] for o in split.structured_content["outputs"]] == [
        "X_train",
        "X_test",
        "y_train",
        "y_test",
    ]
    assert split.structured_content["seed"] is not None
    loaded_hash = load.structured_content["outputs"][0]["hash"]
    recorded = steps(store, "first")
    assert [s["status"] for s in recorded[:2]] == ["succeeded", "succeeded"]
    assert json.loads(recorded[1]["inputs"]) == {"data": loaded_hash}


def test_the_same_calls_in_a_new_run_are_cache_hits(driven: Any) -> None:
    _, _, first, second = driven
    for before, again in zip(first.results[:2], second.results, strict=True):
        assert again.structured_content is not None
        assert before.structured_content is not None
        assert again.structured_content["status"] == "cached"
        assert again.structured_content["cache_hit"] is True
        assert again.structured_content["cached_from"] == before.structured_content["step_id"]
        assert [o["hash"] for o in again.structured_content["outputs"]] == [
            o["hash"] for o in before.structured_content["outputs"]
        ]
        assert "from cache" in again.content[0].text  # type: ignore[union-attr]


REFUSALS: list[tuple[int, Callable[[str], bool]]] = [
    (2, lambda m: "test_size='big'" in m and "valid number" in m),
    (3, lambda m: "test_size=2.0" in m and "less than 1" in m),
    (4, lambda m: "'nosuch'" in m and "no earlier step" in m),
    (5, lambda m: "data is an input" in m and "name of an artifact" in m),
    (6, lambda m: 'name="__import__' in m and "Input should be 'breast_cancer'" in m),
    (7, lambda m: "unknown tool 'drop_database'" in m),
    (8, lambda m: "unknown tool 'python'" in m and "not offered" in m),
]


@pytest.mark.parametrize(("index", "names_the_problem"), REFUSALS)
def test_bad_calls_are_refused_recorded_and_run_nothing(
    driven: Any, index: int, names_the_problem: Callable[[str], bool]
) -> None:
    store, marker, first, _ = driven
    answer = first.results[index]
    assert answer.is_error
    text = answer.content[0].text  # type: ignore[union-attr]
    assert names_the_problem(text), text
    assert answer.structured_content is not None
    assert answer.structured_content["status"] == "rejected"
    recorded = steps(store, "first")[index]
    assert recorded["status"] == "rejected"
    assert names_the_problem(recorded["error_message"]), recorded["error_message"]
    assert json.loads(recorded["outputs"]) == {}
    con = connect(store)
    statuses = con.execute(
        "SELECT status FROM step_events WHERE step_id = ?", [recorded["step_id"]]
    ).fetchall()
    assert statuses == [("rejected",)]  # never accepted, never ran
    assert not marker.exists()


def test_steps_record_origin_mcp_and_the_client(driven: Any) -> None:
    store, _, first, _ = driven
    recorded = steps(store, "first")
    assert len(recorded) == len(first.results)
    con = connect(store)
    for step in recorded:
        assert step["origin"] == "mcp"
        call = con.execute(
            "SELECT provider, model, attributes, request FROM llm_calls WHERE call_id = ?",
            [step["proposed_by"]],
        ).fetchone()
        assert call is not None, step
        provider, model, attributes, request = call
        assert (provider, model) == ("mcp", CLIENT.name)
        attributes = json.loads(attributes)
        assert attributes["mcp.client.name"] == CLIENT.name
        assert attributes["mcp.client.version"] == CLIENT.version
        assert attributes["jsonrpc.request.id"]
        assert json.loads(request)["params"]["name"] == step["action"]
        edge = con.execute(
            "SELECT count(*) FROM edges WHERE src = ? AND dst = ? AND type = 'proposed_by'",
            [step["step_id"], step["proposed_by"]],
        ).fetchone()
        assert edge == (1,)


def test_run_tools_read_the_trace(tmp_path: Path) -> None:
    store = tmp_path / ".rlam"
    session = serve(
        store,
        "browsed",
        [
            LOAD,
            ("rlam_runs", {}),
            ("rlam_steps", {"run": "browsed"}),
            ("rlam_step", {"run": "browsed", "seq": 1}),
            ("rlam_step", {"run": "nosuch", "seq": 1}),
        ],
    )
    runs, page, detail = (r.structured_content for r in session.results[1:4])
    unknown = session.results[4]
    assert runs is not None
    assert [r["name"] for r in runs["runs"]] == ["browsed"]
    assert page is not None
    assert [s["action"] for s in page["steps"]] == ["load_dataset"]
    assert detail is not None
    assert detail["origin"] == "mcp"
    assert detail["llm_call"]["model"] == CLIENT.name
    assert unknown.is_error
    assert "nosuch" in unknown.content[0].text


def test_an_mcp_driven_run_replays_and_verifies_in_a_fresh_process(driven: Any) -> None:
    store, _, _, _ = driven
    report = verified_replay("first", store)
    assert report["counts"] == {"identical": 2, "skipped (rejected)": 7}
