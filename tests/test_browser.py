"""The sidebar and the inline widget in a real JupyterLab, driven by Debian's Chromium.

A real ``jupyter lab`` serves a temp folder with a notebook that records a ``%%rlam``
workflow whose last step fails. The tests open the sidebar, compare what it shows
with ``connect()``, fork from the training step through the generated form, and
check that the fork is a child in the tree and its model is in the kernel. The
screenshots for the README are taken here: ``RLAM_SCREENSHOTS=docs pytest
tests/test_browser.py`` writes ``docs/sidebar.png`` and ``docs/sidebar-dark.png``
(otherwise they go to a temp folder, so a test run leaves the work tree clean).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

import rlam_jupyter
from tests.jupyter_app import JupyterApp, running
from tests.lab_browser import notebook_page, screenshot_folder, widen_sidebar


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshot_folder(tmp_path_factory)


WORKFLOW = """%%rlam --run iris --seed 42
data = load_dataset(name="iris")
X_train, X_test, y_train, y_test = split(data=data, target="target")
Xs_train, Xs_test = scale(X_train=X_train, X_test=X_test)
model = train_model(X=Xs_train, y=y_train, C=1.0)
metrics = evaluate(model=model, X=Xs_test, y=y_test)"""
FAILING = """%%rlam --run iris
extra = load_csv(path="missing.csv")"""

# Run code in the notebook's kernel from the page and return what it printed.
KERNEL_EXEC = """async (code) => {
  const app = window.jupyterapp;
  const panel = Array.from(app.shell.widgets('main')).find(
    w => w.context && w.context.path === 'analysis.ipynb');
  const kernel = panel.sessionContext.session.kernel;
  const future = kernel.requestExecute({ code, store_history: false });
  let out = '';
  future.onIOPub = msg => {
    const c = msg.content;
    if (msg.header.msg_type === 'stream') out += c.text;
    if (msg.header.msg_type === 'error') out += c.ename + ': ' + c.evalue;
  };
  await future.done;
  return out;
}"""


BIG_RUN_STEPS = 5000


def record_big_run(store: Path, steps: int) -> str:
    """A run of ``steps`` recorded steps, written through the journal writer (fast)."""
    from rlam_jupyter.store.journal import JournalWriter, now_us
    from rlam_jupyter.store.layout import StoreLayout

    run_id = "01BIGRUNFORSCROLLING000000"
    writer = JournalWriter(StoreLayout(store), run_id)
    run = {"run_id": run_id, "name": "big", "seed": 0, "created_at": now_us(), "status": "open"}
    writer.append("runs", run)
    for seq in range(1, steps + 1):
        writer.append(
            "steps",
            {
                "run_id": run_id,
                "step_id": f"{run_id}-{seq:06d}",
                "seq": seq,
                "action": "describe",
                "params": "{}",
                "inputs": "{}",
                "outputs": json.dumps({"result": f"{seq:064x}"}),
                "status": "succeeded",
                "duration_ms": 0.1,
            },
        )
    writer.append("runs", {**run, "status": "succeeded", "ended_at": now_us()})
    writer.close()
    return run_id


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterApp]:
    root = tmp_path_factory.mktemp("lab-root")
    (root / "big").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), root / "big" / "big.ipynb")
    record_big_run(root / "big" / ".rlam", BIG_RUN_STEPS)
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    notebook.cells = [
        nbformat.v4.new_code_cell("%load_ext rlam_jupyter"),
        nbformat.v4.new_code_cell(WORKFLOW),
        nbformat.v4.new_code_cell(FAILING),
    ]
    nbformat.write(notebook, root / "analysis.ipynb")
    with running(
        "lab", root, tmp_path_factory.mktemp("lab-work"), "--LabApp.expose_app_in_browser=True"
    ) as app:
        yield app


@pytest.fixture(scope="module")
def page(lab: JupyterApp) -> Iterator[Any]:
    with notebook_page(lab, "analysis.ipynb") as page:
        yield page


def kernel(page: Any, code: str) -> str:
    return str(page.evaluate(KERNEL_EXEC, code))


def shown_steps(page: Any) -> list[tuple[int, str, str]]:
    rows = page.eval_on_selector_all(
        ".jp-rlam-step-row[data-seq]",
        "rows => rows.map(r => [Number(r.dataset.seq), r.dataset.action, r.dataset.status])",
    )
    return sorted((int(s), a, st) for s, a, st in rows)


def test_the_sidebar_shows_what_connect_sees_and_forks_from_a_step(
    lab: JupyterApp, page: Any, shots: Path
) -> None:
    # The sidebar has its own icon on the right and starts empty for a fresh notebook.
    page.click(".jp-SideBar.jp-mod-right li[data-id='rlam-sidebar']")
    page.wait_for_selector("#rlam-sidebar .jp-rlam-empty")
    widen_sidebar(page)

    # Run the notebook; the sidebar fills while it runs (it polls the store's stamp).
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_selector(".jp-rlam-step-row[data-seq='6'][data-status='failed']")

    con = rlam_jupyter.connect(lab.root / ".rlam")
    ((run_id, name),) = con.execute("SELECT run_id, name FROM runs").fetchall()
    assert page.inner_text(f".jp-rlam-run-row[data-run-id='{run_id}'] .jp-rlam-run-name") == name
    expected = con.execute(
        "SELECT seq, action, status FROM run_steps(?) ORDER BY seq", [run_id]
    ).fetchall()
    assert shown_steps(page) == [tuple(row) for row in expected]
    assert expected[-1][1:] == ("load_csv", "failed")
    assert "1 failed" in page.inner_text(".jp-rlam-step-counts")
    page.wait_for_function(
        "id => document.querySelector(`.jp-rlam-run-row[data-run-id='${id}']`)"
        ".textContent.includes('6 steps')",
        arg=run_id,
    )
    assert "1 failed" in page.inner_text(f".jp-rlam-run-row[data-run-id='{run_id}']")
    failed_row = page.query_selector(".jp-rlam-step-row[data-status='failed']")
    assert "jp-rlam-row-failed" in (failed_row.get_attribute("class") or "")

    # Failures are filterable and their detail has the error and traceback.
    page.select_option(".jp-rlam-status-filter", "failed,rejected")
    page.wait_for_function(
        "() => document.querySelectorAll('.jp-rlam-step-row[data-seq]').length === 1"
    )
    assert shown_steps(page) == [(6, "load_csv", "failed")]
    page.click(".jp-rlam-step-row[data-seq='6']")
    detail = page.wait_for_selector(".jp-rlam-detail[data-seq='6']")
    assert "FileNotFoundError" in detail.inner_text()
    assert "missing.csv" in page.inner_text(".jp-rlam-detail .jp-rlam-traceback")
    page.select_option(".jp-rlam-status-filter", "")
    page.wait_for_selector(".jp-rlam-step-row[data-seq='1']")

    # The training step: inputs link to the steps that produced them.
    page.click(".jp-rlam-step-row[data-seq='4']")
    page.wait_for_selector(".jp-rlam-detail[data-seq='4']")
    links = page.eval_on_selector_all(
        ".jp-rlam-detail .jp-rlam-link", "a => a.map(x => Number(x.dataset.seq))"
    )
    assert sorted(links) == [2, 3]

    # Fork from here: the form is generated from train_model's schema and validated.
    page.click("[data-rlam-action='fork']")
    page.wait_for_selector(".jp-rlam-form input[name='C']")
    assert page.input_value(".jp-rlam-form input[name='C']") == "1"
    assert page.eval_on_selector(".jp-rlam-form select[name='model']", "s => s.options.length") == 2
    page.fill(".jp-rlam-form input[name='C']", "-1")
    page.click("[data-rlam-action='fork-submit']")
    assert "must be > 0" in page.inner_text(".jp-rlam-form")
    assert "Fix the highlighted" in page.inner_text(".jp-rlam-form-message")
    assert page.inner_text(".jp-rlam-activity-title") == ""  # nothing was sent
    page.fill(".jp-rlam-form input[name='C']", "0.1")
    page.click("[data-rlam-action='fork-submit']")

    child = page.wait_for_selector(
        f".jp-rlam-run-children .jp-rlam-run-row[data-parent-run-id='{run_id}']"
    )
    assert "%rlam fork" in page.inner_text(".jp-rlam-activity-title")
    fork_id = child.get_attribute("data-run-id")
    con = rlam_jupyter.connect(lab.root / ".rlam")
    parent, fork_seq = con.execute(
        "SELECT parent_run_id, fork_seq FROM runs WHERE run_id = ?", [fork_id]
    ).fetchone()
    assert (parent, fork_seq) == (run_id, 4)
    params = con.execute("SELECT params FROM run_steps(?) WHERE seq = 4", [fork_id]).fetchone()[0]
    assert json.loads(params)["C"] == 0.1

    # The fork ran in the notebook's kernel: its model is in the namespace.
    assert kernel(page, "print(type(model).__name__, model.C)").split() == [
        "LogisticRegression",
        "0.1",
    ]
    assert "accuracy" in kernel(page, "print(sorted(metrics))")

    # The fork is selected: its shared prefix and re-run steps are listed.
    page.wait_for_selector(f".jp-rlam-run-row.jp-mod-selected[data-run-id='{fork_id}']")
    page.wait_for_selector(".jp-rlam-step-row.jp-rlam-inherited[data-seq='1']")
    expected = con.execute(
        "SELECT seq, action, status FROM run_steps(?) ORDER BY seq", [fork_id]
    ).fetchall()
    page.wait_for_function(
        f"() => document.querySelectorAll('.jp-rlam-step-row[data-seq]').length === {len(expected)}"
    )
    assert shown_steps(page) == [tuple(row) for row in expected]
    page.click(".jp-rlam-step-row[data-seq='4']")
    page.wait_for_selector(".jp-rlam-detail[data-seq='4']")
    page.wait_for_timeout(300)
    page.screenshot(path=str(shots / "sidebar.png"))

    # Dark theme: the panel follows JupyterLab's theme variables.
    page.evaluate(
        "() => window.jupyterapp.commands.execute('apputils:change-theme', "
        "{theme: 'JupyterLab Dark'})"
    )
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'")
    page.wait_for_timeout(500)
    background = page.eval_on_selector(
        "#rlam-sidebar", "el => getComputedStyle(el).backgroundColor"
    )
    red, green, blue = (int(v) for v in background[background.index("(") + 1 : -1].split(",")[:3])
    assert red + green + blue < 3 * 100, background
    page.screenshot(path=str(shots / "sidebar-dark.png"))
    page.evaluate(
        "() => window.jupyterapp.commands.execute('apputils:change-theme', "
        "{theme: 'JupyterLab Light'})"
    )
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'true'")


def test_replay_diff_and_export_are_sent_to_the_kernel(
    lab: JupyterApp, page: Any, shots: Path
) -> None:
    """Runs from the first test are in the store; each action shows the kernel's answer."""
    con = rlam_jupyter.connect(lab.root / ".rlam")
    parent = con.execute("SELECT run_id FROM runs WHERE parent_run_id IS NULL").fetchone()[0]
    page.click(f".jp-rlam-run-row[data-run-id='{parent}']")
    page.click(".jp-rlam-step-row[data-seq='3']")
    page.wait_for_selector(".jp-rlam-detail[data-seq='3']")

    page.click("[data-rlam-action='replay']")
    page.wait_for_selector(".jp-rlam-activity-title[data-state='ok']")
    assert f"%rlam replay {parent} --upto 3" in page.inner_text(".jp-rlam-activity-title")
    assert "Xs_train" in kernel(page, "print(sorted(k for k in dir() if k.startswith('Xs_')))")

    page.click("[data-rlam-action='diff']")
    page.wait_for_selector("select[name='diff-with']")
    page.click("[data-rlam-action='diff-submit']")
    page.wait_for_function(
        "() => document.querySelector('.jp-rlam-activity-title').textContent.includes('diff')"
        " && document.querySelector('.jp-rlam-activity-title').dataset.state === 'ok'"
    )
    assert page.inner_text(".jp-rlam-activity-output").strip()

    page.click("[data-rlam-action='export']")
    page.wait_for_function(
        "() => document.querySelector('.jp-rlam-activity-title').textContent.includes('export')"
        " && document.querySelector('.jp-rlam-activity-title').dataset.state === 'ok'"
    )
    assert (lab.root / "analysis.rlam.zip").is_file()
    with zipfile.ZipFile(lab.root / "analysis.rlam.zip") as archive:
        exported = {r["run_id"] for r in json.loads(archive.read("manifest.json"))["runs"]}
    # the root run and the fork the first test sent from the sidebar, outside any cell
    now = rlam_jupyter.connect(lab.root / ".rlam")
    assert exported == {r for (r,) in now.execute("SELECT run_id FROM runs").fetchall()}
    assert len(exported) >= 2
    page.eval_on_selector(".jp-rlam-step-section", "el => el.scrollTo(0, el.scrollHeight)")
    page.screenshot(path=str(shots / "sidebar-actions.png"))


def test_the_palette_has_the_rlam_commands(page: Any) -> None:
    ids = page.evaluate("() => window.jupyterapp.commands.listCommands()")
    for command in ("rlam:open", "rlam:replay", "rlam:fork", "rlam:diff", "rlam:export"):
        assert command in ids
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:activate-command-palette')")
    page.keyboard.type("R-LAM")
    palette = page.wait_for_selector(".lm-CommandPalette-content")
    assert "Fork from Selected Step" in palette.inner_text()
    page.keyboard.press("Escape")


def test_the_inline_widget_shows_the_same_steps(lab: JupyterApp, page: Any) -> None:
    page.evaluate(
        """() => {
          const app = window.jupyterapp;
          const panel = Array.from(app.shell.widgets('main')).find(
            w => w.context && w.context.path === 'analysis.ipynb');
          app.shell.activateById(panel.id);
          const nb = panel.content;
          nb.activeCellIndex = nb.widgets.length - 1;
          return app.commands.execute('notebook:insert-cell-below').then(() => {
            nb.activeCell.model.sharedModel.setSource('import rlam_jupyter\\nrlam_jupyter.browse("iris")');
            return app.commands.execute('notebook:run-cell');
          });
        }"""
    )
    widget = page.wait_for_selector(".jp-OutputArea .rlam-w .rlam-w-steps tr[data-seq]")
    assert widget is not None
    con = rlam_jupyter.connect(lab.root / ".rlam")
    run_id = con.execute(
        "SELECT run_id FROM runs WHERE name = 'iris' ORDER BY created_at DESC LIMIT 1"
    ).fetchone()[0]
    assert page.get_attribute(".rlam-w-run.rlam-w-selected", "data-run-id") == run_id
    rows = page.eval_on_selector_all(
        ".rlam-w-steps tr[data-seq]",
        "rows => rows.map(r => [Number(r.dataset.seq), r.querySelector('.rlam-w-action').textContent, r.dataset.status])",
    )
    expected = con.execute(
        "SELECT seq, action, status FROM run_steps(?) ORDER BY seq", [run_id]
    ).fetchall()
    assert [tuple(r) for r in rows] == [tuple(row) for row in expected]
    # The fork shows as a child run; a click on the failed step shows its error.
    assert page.query_selector(".rlam-w-tree .rlam-w-tree .rlam-w-run") is not None
    page.click(".rlam-w-steps tr[data-status='failed']")
    detail = page.wait_for_selector(".rlam-w-detail .rlam-w-error")
    assert "FileNotFoundError" in detail.inner_text()


def test_a_long_run_scrolls_without_loading_every_step(lab: JupyterApp, page: Any) -> None:
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url) if "/steps?" in r.url else None)
    page.evaluate(
        "() => window.jupyterapp.commands.execute('docmanager:open', {path: 'big/big.ipynb'})"
    )
    page.wait_for_selector(".jp-rlam-run-row[data-run-id='01BIGRUNFORSCROLLING000000']")
    page.wait_for_selector(".jp-rlam-step-row[data-seq='1']")
    assert f"{BIG_RUN_STEPS} steps" in page.inner_text(".jp-rlam-step-counts")
    assert page.eval_on_selector_all(".jp-rlam-step-row", "rows => rows.length") < 100
    page.eval_on_selector(".jp-rlam-steps-viewport", "v => { v.scrollTop = v.scrollHeight; }")
    page.wait_for_selector(f".jp-rlam-step-row[data-seq='{BIG_RUN_STEPS}']")
    assert page.eval_on_selector_all(".jp-rlam-step-row", "rows => rows.length") < 100
    offsets = {int(url.split("offset=")[1].split("&")[0]) for url in requested}
    assert len(offsets) <= 4, offsets  # the first pages and the last, never all 50
    assert BIG_RUN_STEPS - 100 in offsets


def test_a_figure_step_shows_its_rendering_in_the_step_detail(
    lab: JupyterApp, page: Any, shots: Path
) -> None:
    if page.is_visible(".jp-Dialog"):  # the kernel picker of a notebook opened before
        page.click(".jp-Dialog button.jp-mod-reject")
    page.evaluate(
        """() => {
          const app = window.jupyterapp;
          const panel = Array.from(app.shell.widgets('main')).find(
            w => w.context && w.context.path === 'analysis.ipynb');
          app.shell.activateById(panel.id);
        }"""
    )
    if not page.is_visible("#rlam-sidebar"):
        page.click(".jp-SideBar.jp-mod-right li[data-id='rlam-sidebar']")
    kernel(page, "get_ipython().run_line_magic('load_ext', 'rlam_jupyter')")
    cell = 'data = load_dataset(name="iris")\\nfig = plot(data=data, x="petal length (cm)", y="petal width (cm)", color_by="target")'
    printed = kernel(
        page, f"get_ipython().run_cell_magic('rlam', '--run plots --seed 1 --quiet', '{cell}')"
    )
    assert "Error" not in printed, printed
    con = rlam_jupyter.connect(lab.root / ".rlam")
    run_id = con.execute("SELECT run_id FROM runs WHERE name = 'plots'").fetchone()[0]
    page.click(f".jp-rlam-run-row[data-run-id='{run_id}']")
    page.click(".jp-rlam-step-row[data-seq='2']")
    page.wait_for_selector(".jp-rlam-detail[data-seq='2']")
    page.wait_for_function(
        "() => { const i = document.querySelector('.jp-rlam-detail img.jp-rlam-figure');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    width, height = page.eval_on_selector(
        ".jp-rlam-detail img.jp-rlam-figure", "i => [i.naturalWidth, i.naturalHeight]"
    )
    assert width > 100
    assert height > 100
    page.screenshot(path=str(shots / "sidebar-figure.png"))


CRASHED_KERNEL = """\
import os, sys
from rlam_jupyter.engine import Engine
from rlam_jupyter.actions.proposal import Proposal

engine = Engine(sys.argv[1])
run = engine.start_run("crashed", seed=1)
engine.execute(run, Proposal("load_dataset", {"name": "iris"}, targets=("data",)))
engine.run_action = lambda *args, **kwargs: os._exit(0)  # the kernel dies mid-step
engine.execute(run, Proposal("describe", {}, {"data": "data"}, ("summary",)))
"""


def test_a_step_whose_kernel_died_shows_as_interrupted(lab: JupyterApp, page: Any) -> None:
    import subprocess
    import sys

    folder = lab.root / "crashed"
    folder.mkdir()
    nbformat.write(nbformat.v4.new_notebook(), folder / "crashed.ipynb")
    subprocess.run(
        [sys.executable, "-c", CRASHED_KERNEL, str(folder / ".rlam")], check=True, timeout=120
    )
    if page.is_visible(".jp-Dialog"):
        page.click(".jp-Dialog button.jp-mod-reject")
    page.evaluate(
        "() => window.jupyterapp.commands.execute('docmanager:open', {path: 'crashed/crashed.ipynb'})"
    )
    if page.is_visible(".jp-Dialog"):  # its kernel picker
        page.click(".jp-Dialog button.jp-mod-reject")
    if not page.is_visible("#rlam-sidebar"):
        page.click(".jp-SideBar.jp-mod-right li[data-id='rlam-sidebar']")
    row = page.wait_for_selector(".jp-rlam-step-row[data-seq='2']")
    assert row.get_attribute("data-status") == "interrupted"
    assert "↯" in row.inner_text()
    assert "interrupted" in page.inner_text(".jp-rlam-run-row").lower()
