"""Human in the loop for MCP clients attached to a notebook: a step that needs approval
waits on the server's board (``/rlam/api/approvals``) until a person decides it in the
rlam sidebar, and a step nobody decides in time is refused and recorded.

The browser test drives the sidebar in a real JupyterLab (Debian's Chromium) while an
MCP client (the official SDK's) waits in a background thread; it approves one call,
rejects one with a reason and edits one, and sees a note on one decided elsewhere. ``RLAM_SCREENSHOTS=docs`` writes the
screenshots for the README: ``docs/mcp-approval-notification.png`` (the notification
while the person works in the notebook) and ``docs/sidebar-mcp-approval.png`` (the
pending proposal in the sidebar).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
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
from tests.lab_browser import notebook_page, screenshot_folder, widen_sidebar
from tests.mcp_client import CLIENT, drive, text


def write_notebook(path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    notebook.cells = [nbformat.v4.new_code_cell("%load_ext rlam_jupyter")]
    nbformat.write(notebook, path)


@contextlib.contextmanager
def serving(
    kind: str, tmp_path_factory: pytest.TempPathFactory, *options: str
) -> Iterator[JupyterApp]:
    """``jupyter server`` or ``lab`` on a fresh folder with ``analysis.ipynb``."""
    root = tmp_path_factory.mktemp(f"approvals-{kind}")
    write_notebook(root / "analysis.ipynb")
    with running(kind, root, tmp_path_factory.mktemp(f"{kind}-work"), *options) as app:
        yield app


def pending(app: JupyterApp) -> list[dict[str, Any]]:
    status, body = app.get("rlam/api/approvals")
    assert status == 200, body
    return list(body["pending"])


def wait_for_pending(app: JupyterApp, timeout_s: float = 120) -> list[dict[str, Any]]:
    """The board once something waits on it."""
    deadline = time.monotonic() + timeout_s
    while not (found := pending(app)):
        assert time.monotonic() < deadline, "no proposal came to wait for approval"
        time.sleep(0.1)
    return found


def approvals_rows(root: Path) -> list[tuple[Any, ...]]:
    return (
        connect(root / ".rlam")
        .sql(
            "SELECT s.action, s.status, a.decision, a.reason, a.edited_params, a.decided_by "
            "FROM approvals a JOIN steps s USING (step_id) ORDER BY s.seq"
        )
        .fetchall()
    )


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterApp]:
    """A Jupyter server whose MCP steps all wait for approval, for 2 s at most."""
    options = ("--RlamMCP.approve=all", "--RlamMCP.approval_timeout=2")
    with serving("server", tmp_path_factory, *options) as app:
        yield app


def test_a_call_nobody_decides_in_time_is_refused_and_recorded(impatient: JupyterApp) -> None:
    seen: list[list[dict[str, Any]]] = []

    async def work(client: Client) -> CallToolResult:
        await client.call_tool("rlam_open", {"notebook": "analysis.ipynb"})
        async with anyio.create_task_group() as group:
            group.start_soon(
                lambda: anyio.to_thread.run_sync(lambda: seen.append(wait_for_pending(impatient)))
            )
            return await client.call_tool("load_dataset", {"name": "iris", "_outputs": ["iris"]})

    started = time.monotonic()
    answer = drive(impatient, work)
    assert answer.is_error
    assert "no decision within 2 s" in text(answer), text(answer)
    assert time.monotonic() - started < 60
    ((waiting,),) = seen
    assert waiting["action"] == "load_dataset"
    assert waiting["client"] == CLIENT.name
    assert waiting["expires_at"] - waiting["asked_at"] == pytest.approx(2)
    assert pending(impatient) == []  # off the board once refused
    ((action, status, decision, reason, edited, decided_by),) = approvals_rows(impatient.root)
    assert (action, status, decision, edited, decided_by) == (
        "load_dataset",
        "rejected",
        "rejected",
        None,
        "rlam",
    )
    assert "no decision within 2 s" in reason
    assert connect(impatient.root / ".rlam").execute(
        "SELECT count(*) FROM artifacts"
    ).fetchall() == [(0,)]


def test_a_decision_for_a_proposal_that_no_longer_waits_is_404_and_a_bad_body_400(
    impatient: JupyterApp,
) -> None:
    status, board = impatient.get("rlam/api/approvals")
    assert status == 200
    assert abs(board["now"] - time.time()) < 60  # the sidebar counts down from it
    decide = "rlam/api/approvals/01NOSUCHAPPROVAL"
    status, body = impatient.get(decide, method="POST", body={"approved": True})
    assert status == 404
    assert "no proposal '01NOSUCHAPPROVAL' waits" in body["message"]
    for bad in ({}, {"approved": "yes"}, {"approved": True, "edited_params": [1]}):
        status, body = impatient.get(decide, method="POST", body=bad)
        assert status == 400, bad
        assert "approved" in body["message"] or "edited_params" in body["message"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterApp]:
    """JupyterLab whose MCP steps all wait for a decision in the sidebar."""
    options = ("--LabApp.expose_app_in_browser=True", "--RlamMCP.approve=all")
    with serving("lab", tmp_path_factory, *options) as app:
        yield app


class Agent(threading.Thread):
    """An MCP client that opens the notebook and makes its calls one after the other,
    each waiting for the person's decision."""

    CALLS = (
        ("load_dataset", {"name": "iris", "_outputs": ["iris"]}),
        ("describe", {"data": "iris", "_outputs": ["summary"]}),
        ("split", {"data": "iris", "test_size": 0.3}),
        ("describe", {"data": "iris", "_outputs": ["summary"]}),
    )

    def __init__(self, app: JupyterApp) -> None:
        super().__init__(daemon=True)
        self.app = app
        self.answers: list[CallToolResult] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        async def work(client: Client) -> None:
            opened = await client.call_tool("rlam_open", {"notebook": "analysis.ipynb"})
            assert not opened.is_error, text(opened)
            for name, arguments in self.CALLS:
                self.answers.append(await client.call_tool(name, arguments))

        try:
            drive(self.app, work)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc


def card(page: Any, action: str) -> Any:
    return page.wait_for_selector(
        f"#rlam-sidebar .jp-rlam-approval[data-state='waiting'][data-action='{action}']"
    )


def gone(page: Any, action: str) -> None:
    page.wait_for_selector(f".jp-rlam-approval[data-action='{action}']", state="detached")


TAB = ".jp-SideBar.jp-mod-right li[data-id='rlam-sidebar']"


def open_from_the_notification(page: Any, shots: Path) -> None:
    """The person works in the notebook, the panel hidden: a notification says that an
    agent waits, the panel's tab shows the count, and the notification opens the panel."""
    assert not page.is_visible("#rlam-sidebar")
    toast = page.wait_for_selector(".Toastify__toast:has-text('waits for your approval')")
    assert "load_dataset" in toast.inner_text()
    assert "analysis.ipynb" in toast.inner_text()
    assert page.get_attribute(TAB, "data-rlam-pending") == "1"
    page.wait_for_timeout(500)  # the toast slides in
    page.screenshot(path=str(shots / "mcp-approval-notification.png"))
    toast.query_selector("button:has-text('Open rlam sidebar')").click()
    card(page, "load_dataset")
    assert page.is_visible("#rlam-sidebar")
    widen_sidebar(page, 160)


def approve_the_first(page: Any, shots: Path) -> None:
    first = card(page, "load_dataset")
    shown = first.inner_text()
    assert "iris = load_dataset(name='iris')" in shown, shown
    assert CLIENT.name in shown
    assert "analysis.ipynb" in shown
    assert "step 1" in shown
    assert "load_dataset(name:" in shown  # the signature
    assert " left" in page.inner_text(".jp-rlam-approval-time")
    assert page.inner_text(".jp-rlam-approvals-count") == "1"
    page.wait_for_timeout(300)
    page.screenshot(path=str(shots / "sidebar-mcp-approval.png"))
    first.query_selector("[data-rlam-action='approve']").click()
    gone(page, "load_dataset")


def reject_the_second(page: Any) -> None:
    card(page, "describe").query_selector("[data-rlam-action='reject']").click()
    page.fill(".jp-rlam-approval input[name='reason']", "not now")
    page.click(".jp-rlam-approval [data-rlam-action='reject-submit']")
    gone(page, "describe")


def edit_the_third(page: Any, lab: JupyterApp) -> None:
    card(page, "split").query_selector("[data-rlam-action='edit']").click()
    field = ".jp-rlam-approval input[name='test_size']"
    assert page.input_value(field) == "0.3"
    page.fill(field, "1.5")  # the schema's bound: checked before anything is sent
    page.click(".jp-rlam-approval [data-rlam-action='approve-edited']")
    assert "must be < 1" in page.inner_text(".jp-rlam-approval .jp-rlam-approval-form")
    assert len(pending(lab)) == 1
    page.fill(field, "0.25")
    page.click(".jp-rlam-approval [data-rlam-action='approve-edited']")
    gone(page, "split")


def see_the_fourth_decided_elsewhere(page: Any, lab: JupyterApp) -> None:
    """Decided over the API while the person writes a reason: the card says so."""
    card(page, "describe").query_selector("[data-rlam-action='reject']").click()
    (elsewhere,) = pending(lab)
    status, _ = lab.get(
        f"rlam/api/approvals/{elsewhere['id']}",
        method="POST",
        body={"approved": False, "reason": "decided over the API"},
    )
    assert status == 200
    note = page.wait_for_selector(".jp-rlam-approval[data-state='gone'] .jp-rlam-approval-error")
    assert "Decided elsewhere" in note.inner_text()
    page.click(".jp-rlam-approval[data-state='gone'] [data-rlam-action='dismiss']")
    page.wait_for_selector(".jp-rlam-approvals", state="hidden")
    assert page.get_attribute(TAB, "data-rlam-pending") is None


def test_the_sidebar_approves_rejects_and_edits_while_the_client_waits(
    lab: JupyterApp, tmp_path_factory: pytest.TempPathFactory
) -> None:
    shots = screenshot_folder(tmp_path_factory)
    with notebook_page(lab, "analysis.ipynb") as page:
        agent = Agent(lab)
        agent.start()
        open_from_the_notification(page, shots)
        approve_the_first(page, shots)
        reject_the_second(page)
        edit_the_third(page, lab)
        see_the_fourth_decided_elsewhere(page, lab)
        agent.join(timeout=180)
    assert agent.error is None, agent.error
    loaded, described, split, elsewhere_answer = agent.answers
    assert not loaded.is_error, text(loaded)
    assert described.is_error
    assert "not now" in text(described), text(described)
    assert not split.is_error, text(split)
    assert "decided over the API" in text(elsewhere_answer)

    rows = approvals_rows(lab.root)
    assert [row[:4] for row in rows] == [
        ("load_dataset", "succeeded", "approved", ""),
        ("describe", "rejected", "rejected", "not now"),
        ("split", "succeeded", "approved", "edited"),
        ("describe", "rejected", "rejected", "decided over the API"),
    ]
    assert [row[5] for row in rows] == ["sidebar"] * 4
    edits = [row[4] and json.loads(row[4]) for row in rows]
    assert edits == [None, None, {"test_size": 0.25}, None]
    con = connect(lab.root / ".rlam")
    by_action = dict(
        con.execute(
            "SELECT s.action, count(a.artifact_id) FROM steps s "
            "LEFT JOIN artifacts a USING (step_id) GROUP BY s.action"
        ).fetchall()
    )
    assert by_action == {"load_dataset": 1, "describe": 0, "split": 4}
    ((params,),) = con.execute("SELECT params FROM steps WHERE action = 'split'").fetchall()
    assert json.loads(params)["test_size"] == 0.25
