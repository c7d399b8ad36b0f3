"""The MCP server attached to a real ``jupyter server`` (``/rlam/mcp``), driven by the
official SDK's client over Streamable HTTP with the Jupyter token: calls run in the
notebook's own kernel (its namespace, its current run, its actions), requests without
the token are refused, and a kernel that dies mid-call answers an error and leaves an
interrupted step, not a hang."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import nbformat
import pytest
from mcp import Client
from mcp_types import CallToolResult

from rlam_jupyter.store.catalog import connect
from tests.jupyter_app import JupyterApp, running
from tests.mcp_client import CLIENT, drive, text

NOTEBOOK_ACTIONS = '''
import time
import pandas as pd
import rlam_jupyter as rlam

@rlam.action
def add_noise_column(data: pd.DataFrame, scale: float = 1.0) -> pd.DataFrame:
    """Add a column of seeded noise (an action defined in the notebook)."""
    out = data.copy()
    out["noise"] = scale
    return out

@rlam.action(determinism="external")
def nap(seconds: float) -> float:
    """Sleep, then answer (a long step)."""
    time.sleep(seconds)
    return seconds
'''


def notebook(path: Path, *cells: str) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterApp]:
    root = tmp_path_factory.mktemp("attached")
    notebook(root / "analysis.ipynb", NOTEBOOK_ACTIONS)
    notebook(root / "other.ipynb", "x = 1")
    with running("server", root, tmp_path_factory.mktemp("attached-work")) as app:
        yield app


def kernel_value(app: JupyterApp, path: str, expression: str) -> Any:
    """Evaluate ``expression`` in the notebook's kernel (through the REST API's sessions
    and a kernel client of our own), as the person at the notebook would see it."""
    from jupyter_client.blocking.client import BlockingKernelClient

    status, sessions = app.get("api/sessions")
    assert status == 200
    kernel_id = next(s["kernel"]["id"] for s in sessions if s["path"] == path)
    runtime = Path(os.environ.get("JUPYTER_RUNTIME_DIR", ""))
    found = list(app.log.parent.glob(f"runtime/kernel-{kernel_id}.json")) or list(
        runtime.glob(f"kernel-{kernel_id}.json")
    )
    client = BlockingKernelClient()
    client.load_connection_file(str(found[0]))
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        reply = client.execute_interactive(
            f"import json; print(json.dumps({expression}))", timeout=60, output_hook=_keep
        )
        assert reply["content"]["status"] == "ok", reply
    finally:
        client.stop_channels()
    return json.loads(_OUTPUT.pop())


_OUTPUT: list[str] = []


def _keep(message: dict[str, Any]) -> None:
    if message["header"]["msg_type"] == "stream":
        _OUTPUT.append(message["content"]["text"])


def define_actions(app: JupyterApp) -> None:
    """Run the notebook's first cell in its kernel, as the person would."""
    kernel_value(app, "analysis.ipynb", "exec(" + repr(NOTEBOOK_ACTIONS) + ") or 1")


def open_with_actions(app: JupyterApp) -> None:
    async def work(client: Client) -> Any:
        return await client.call_tool("rlam_open", {"notebook": "analysis.ipynb"})

    assert not drive(app, work).is_error
    define_actions(app)


def test_calls_run_in_the_notebooks_kernel_with_its_own_actions(jupyter: JupyterApp) -> None:
    async def work(client: Client) -> Any:
        before = {t.name for t in (await client.list_tools()).tools}
        opened = await client.call_tool("rlam_open", {"notebook": "analysis.ipynb"})
        # the notebook's cell defines its actions; run it as the person would
        return before, opened

    before, opened = drive(jupyter, work)
    define_actions(jupyter)
    # two notebooks could be meant: before rlam_open only rlam_open is offered
    assert before == {"rlam_open"}
    assert not opened.is_error, text(opened)
    assert opened.structured_content["notebook"] == "analysis.ipynb"
    assert opened.structured_content["kernel_started"] is True

    async def calls(client: Client) -> Any:
        await client.call_tool("rlam_open", {"notebook": "analysis.ipynb"})
        tools = {t.name: t for t in (await client.list_tools()).tools}
        load = await client.call_tool("load_dataset", {"name": "iris", "_outputs": ["iris"]})
        noisy = await client.call_tool(
            "add_noise_column", {"data": "iris", "scale": 0.5, "_outputs": ["noisy"]}
        )
        bad = await client.call_tool("add_noise_column", {"data": "iris", "scale": "big"})
        return tools, load, noisy, bad

    tools, load, noisy, bad = drive(jupyter, calls)
    assert {"add_noise_column", "nap", "load_dataset", "rlam_steps"} <= set(tools)
    assert "Add a column of seeded noise" in (tools["add_noise_column"].description or "")
    assert not load.is_error, text(load)
    assert not noisy.is_error, text(noisy)
    assert bad.is_error
    assert "scale" in text(bad)
    # the values are in the person's namespace, under the names the agent gave
    assert kernel_value(jupyter, "analysis.ipynb", "list(noisy.columns)[-1]") == "noise"
    assert kernel_value(jupyter, "analysis.ipynb", "len(iris)") == 150

    con = connect(jupyter.root / ".rlam")
    rows = con.sql(
        "SELECT s.action, s.status, s.origin, parse_filename(r.notebook), c.model FROM steps s "
        "JOIN runs r USING (run_id) JOIN llm_calls c ON c.call_id = s.proposed_by "
        "ORDER BY s.seq"
    ).fetchall()
    assert rows == [
        ("load_dataset", "succeeded", "mcp", "analysis.ipynb", CLIENT.name),
        ("add_noise_column", "succeeded", "mcp", "analysis.ipynb", CLIENT.name),
        ("add_noise_column", "rejected", "mcp", "analysis.ipynb", CLIENT.name),
    ]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-the-jupyter-token"}])
def test_requests_without_the_jupyter_token_are_refused(
    jupyter: JupyterApp, headers: dict[str, str]
) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "x", "version": "1"},
        },
    }
    request = urllib.request.Request(
        f"{jupyter.url}rlam/mcp",
        data=json.dumps(initialize).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json", **headers},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code in (401, 403)


def test_a_kernel_that_dies_mid_call_answers_an_error_and_leaves_an_interrupted_step(
    jupyter: JupyterApp,
) -> None:
    open_with_actions(jupyter)
    pid = kernel_value(jupyter, "analysis.ipynb", "__import__('os').getpid()")

    async def work(client: Client) -> Any:
        await client.call_tool("rlam_open", {"notebook": "analysis.ipynb"})
        async with anyio.create_task_group() as group:
            answers: list[CallToolResult] = []

            async def call() -> None:
                answers.append(await client.call_tool("nap", {"seconds": 60}))

            group.start_soon(call)
            await anyio.sleep(4)  # the step is running in the kernel
            os.kill(pid, signal.SIGKILL)
        return answers[0]

    started = time.monotonic()
    answer = drive(jupyter, work)
    assert time.monotonic() - started < 50  # answered when the kernel died, not at 60 s
    assert answer.is_error
    assert "died" in text(answer)
    con = connect(jupyter.root / ".rlam")
    assert con.sql(
        "SELECT status FROM steps WHERE action = 'nap' ORDER BY seq DESC LIMIT 1"
    ).fetchall() == [("interrupted",)]


def test_cache_fork_diff_resources_and_export_through_the_kernel(jupyter: JupyterApp) -> None:
    open_with_actions(jupyter)

    async def work(client: Client) -> Any:
        await client.call_tool("rlam_open", {"notebook": "analysis.ipynb"})
        first = await client.call_tool("load_dataset", {"name": "wine", "_outputs": ["wine"]})
        again = await client.call_tool("load_dataset", {"name": "wine", "_outputs": ["wine"]})
        step = first.structured_content
        run = step["run_id"]
        forked = await client.call_tool(
            "rlam_fork", {"run": run, "at": step["seq"], "params": {"name": "iris"}}
        )
        diff = await client.call_tool(
            "rlam_diff", {"a": run, "b": forked.structured_content["run_id"]}
        )
        runs = await client.read_resource("rlam://runs")
        detail = await client.read_resource(f"rlam://steps/{step['step_id']}")
        exported = await client.call_tool("rlam_export", {"path": "agent-bundle.zip"})
        return first, again, forked, diff, runs, detail, exported

    # the initialize handshake (2025-11-25): answers stream as Server-Sent Events
    first, again, forked, diff, runs, detail, exported = drive(jupyter, work, mode="legacy")
    assert first.structured_content["status"] in ("succeeded", "cached"), text(first)
    assert again.structured_content["cache_hit"] is True
    assert not forked.is_error, text(forked)
    assert not diff.is_error, text(diff)
    assert "iris" in json.dumps(diff.structured_content)
    listed = json.loads(runs.contents[0].text)  # type: ignore[union-attr]
    assert forked.structured_content["run_id"] in {r["run_id"] for r in listed["runs"]}
    assert json.loads(detail.contents[0].text)["action"] == "load_dataset"  # type: ignore[union-attr]
    assert not exported.is_error, text(exported)
    # the bundle is written where the notebook's kernel runs: next to the notebook
    assert (jupyter.root / "agent-bundle.zip").is_file()
