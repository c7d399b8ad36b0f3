"""The trace as MCP resources on a real ``rlam mcp`` subprocess, read by the SDK's stdio
client: ``rlam://runs``, ``rlam://runs/{run}`` and ``rlam://steps/{step_id}`` give the
JSON the run tools give; a URI that names nothing is a protocol error (invalid params)
naming the URI and the valid forms, and the server keeps answering after it."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

LOAD = ("load_dataset", {"name": "iris", "_outputs": ["data"]})
SPLIT = (
    "split",
    {"data": "data", "test_size": 0.3, "_outputs": ["X_train", "X_test", "y_train", "y_test"]},
)
UNKNOWN = ["rlam://runs/nosuch", "rlam://steps/nosuch", "rlam://nothing", "file:///etc/passwd"]


@dataclass
class Read:
    """What one server answered: its resource lists, each read, each refusal."""

    listed: list[types.Resource] = field(default_factory=list)
    templates: list[types.ResourceTemplate] = field(default_factory=list)
    contents: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, Any] = field(default_factory=dict)
    refused: dict[str, MCPError] = field(default_factory=dict)
    before_any_call: Any = None
    after_refusals: types.CallToolResult | None = None


def json_of(result: types.ReadResourceResult, uri: str) -> Any:
    (content,) = result.contents
    assert isinstance(content, types.TextResourceContents)
    assert content.uri == uri
    assert content.mime_type == "application/json"
    return json.loads(content.text)


@pytest.fixture(scope="module")
def read(tmp_path_factory: pytest.TempPathFactory) -> Read:
    root = tmp_path_factory.mktemp("mcp-resources")
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "rlam_jupyter", "mcp", "--store", ".rlam", "--run", "res"],
        env={k: v for k, v in os.environ.items() if k != "RLAM_HOME"},
        cwd=str(root),
    )
    answers = Read()

    async def drive() -> None:
        async with Client(params, read_timeout_seconds=120) as client:
            first = await client.read_resource("rlam://runs")
            answers.before_any_call = json_of(first, "rlam://runs")
            for name, arguments in (LOAD, SPLIT):
                assert not (await client.call_tool(name, arguments)).is_error
            answers.listed = (await client.list_resources()).resources
            answers.templates = (await client.list_resource_templates()).resource_templates
            run_id = answers.listed[1].uri.rsplit("/", 1)[1]
            step = await client.call_tool("rlam_step", {"run": "res", "seq": 2})
            assert step.structured_content is not None
            step_id = step.structured_content["step_id"]
            answers.tools["rlam_step"] = step.structured_content
            for name, arguments in (("rlam_runs", {}), ("rlam_steps", {"run": "res"})):
                answers.tools[name] = (await client.call_tool(name, arguments)).structured_content
            for uri in (
                "rlam://runs",
                "rlam://runs/res",
                f"rlam://runs/{run_id}",
                f"rlam://runs/{run_id[:10]}?offset=1&limit=1",
                f"rlam://steps/{step_id}",
            ):
                answers.contents[uri] = json_of(await client.read_resource(uri), uri)
            for uri in UNKNOWN:
                with pytest.raises(MCPError) as refused:
                    await client.read_resource(uri)
                answers.refused[uri] = refused.value
            answers.after_refusals = await client.call_tool("rlam_runs", {})

    anyio.run(drive)
    return answers


def test_resources_list_the_runs_and_the_templates(read: Read) -> None:
    runs, run = read.listed
    assert runs.uri == "rlam://runs"
    assert run.uri.startswith("rlam://runs/")
    assert run.name == "run res"
    assert "2 step(s)" in (run.description or "")
    assert {r.mime_type for r in read.listed} == {"application/json"}
    assert [t.uri_template for t in read.templates] == [
        "rlam://runs/{run}",
        "rlam://steps/{step_id}",
    ]


def test_the_runs_resource_is_what_rlam_runs_answers(read: Read) -> None:
    assert read.before_any_call["runs"] == []  # an empty store reads as no runs
    assert read.contents["rlam://runs"]["runs"] == read.tools["rlam_runs"]["runs"]


def test_a_run_resource_holds_its_summary_and_its_steps(read: Read) -> None:
    by_name = read.contents["rlam://runs/res"]
    by_id = read.contents[read.listed[1].uri]
    assert by_name == by_id
    assert by_name["run"]["name"] == "res"
    assert by_name["run"]["run_id"] == read.listed[1].uri.rsplit("/", 1)[1]
    assert by_name["steps"] == read.tools["rlam_steps"]["steps"]
    assert [s["action"] for s in by_name["steps"]] == ["load_dataset", "split"]
    paged = next(v for k, v in read.contents.items() if "offset=1" in k)
    assert (paged["offset"], paged["limit"], paged["total"]) == (1, 1, 2)
    assert [s["action"] for s in paged["steps"]] == ["split"]


def test_a_step_resource_is_the_steps_detail(read: Read) -> None:
    step = next(v for k, v in read.contents.items() if k.startswith("rlam://steps/"))
    assert step == read.tools["rlam_step"]
    assert step["action"] == "split"
    assert step["input_links"][0]["producer"]["action"] == "load_dataset"
    assert [o["name"] for o in step["output_artifacts"]] == [
        "X_train",
        "X_test",
        "y_train",
        "y_test",
    ]
    assert all(o["preview"] for o in step["output_artifacts"])


@pytest.mark.parametrize("uri", UNKNOWN)
def test_an_unknown_resource_is_invalid_params_naming_the_uri_and_the_forms(
    read: Read, uri: str
) -> None:
    refused = read.refused[uri]
    assert refused.code == types.INVALID_PARAMS
    assert repr(uri) in refused.message
    assert "rlam://runs/{run}" in refused.message
    assert "rlam://steps/{step_id}" in refused.message
    assert read.after_refusals is not None
    assert not read.after_refusals.is_error  # the server still answers
