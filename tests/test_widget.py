"""``browse()`` / ``%rlam browse`` in a real IPython shell: same data as ``connect()``.

The widget's rendering in a browser is covered by ``test_browser.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

import rlam_jupyter
from rlam_jupyter.frontends.widget import PAGE_SIZE, TraceBrowser

WORKFLOW = """%%rlam --run iris --seed 7
data = load_dataset(name="iris")
X_train, X_test, y_train, y_test = split(data=data, target="target")
model = train_model(X=X_train, y=y_train, C=1.0)
"""
FAILING = """%%rlam --run iris
extra = load_csv(path="missing.csv")
"""


@pytest.fixture
def recorded(shell: InteractiveShell) -> InteractiveShell:
    assert shell.run_cell(WORKFLOW).success
    assert not shell.run_cell(FAILING).success
    return shell


def test_browse_shows_the_runs_and_steps_connect_sees(recorded: InteractiveShell) -> None:
    widget = rlam_jupyter.browse()
    assert isinstance(widget, TraceBrowser)
    con = rlam_jupyter.connect()
    (run_id,) = [r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()]
    assert [r["run_id"] for r in widget.runs] == [run_id]
    assert widget.run_id == run_id
    expected = con.execute(
        "SELECT seq, action, status FROM run_steps(?) ORDER BY seq", [run_id]
    ).fetchall()
    shown = [(s["seq"], s["action"], s["status"]) for s in widget.page["steps"]]
    assert shown == [tuple(row) for row in expected]
    assert shown[-1][1:] == ("load_csv", "failed")


def test_selecting_a_step_shows_its_detail_and_error(recorded: InteractiveShell) -> None:
    widget = rlam_jupyter.browse("iris")
    widget.seq = 4
    assert widget.detail["action"] == "load_csv"
    assert widget.detail["error_type"] == "FileNotFoundError"
    assert "missing.csv" in widget.detail["traceback"]
    widget.seq = 3
    producers = {link["name"]: link["producer"]["seq"] for link in widget.detail["input_links"]}
    assert producers == {"X_train": 2, "y_train": 2}
    widget.seq = None
    assert widget.detail == {}


def test_the_status_filter_keeps_only_failures(recorded: InteractiveShell) -> None:
    widget = rlam_jupyter.browse()
    widget.status_filter = "failed,rejected"
    assert [s["status"] for s in widget.page["steps"]] == ["failed"]
    assert widget.page["counts"] == {"succeeded": 3, "failed": 1}


def test_the_magic_returns_the_browser_and_refresh_sees_new_steps(
    recorded: InteractiveShell,
) -> None:
    widget = recorded.run_line_magic("rlam", "browse iris")
    assert isinstance(widget, TraceBrowser)
    assert recorded.run_cell('%%rlam --run again\nd = load_dataset(name="wine")').success
    assert len(widget.runs) == 1
    widget._on_message(widget, {"type": "refresh"}, [])
    assert [r["name"] for r in widget.runs] == ["iris", "again"]


def test_browse_pages_a_long_run(shell: InteractiveShell) -> None:
    body = "\n".join(f"d{i} = load_dataset(name='iris')" for i in range(PAGE_SIZE + 5))
    assert shell.run_cell(f"%%rlam --run long\n{body}").success
    widget = rlam_jupyter.browse("long")
    assert len(widget.page["steps"]) == PAGE_SIZE
    assert widget.page["total"] == PAGE_SIZE + 5
    widget.offset = PAGE_SIZE
    assert [s["seq"] for s in widget.page["steps"]] == list(range(PAGE_SIZE + 1, PAGE_SIZE + 6))


def test_bad_input_is_explained(recorded: InteractiveShell) -> None:
    from IPython.core.error import UsageError

    from rlam_jupyter.errors import UnknownRunError

    with pytest.raises(UnknownRunError, match="no run 'nope'"):
        rlam_jupyter.browse("nope")
    with pytest.raises(UsageError, match="at most one run"):
        recorded.run_line_magic("rlam", "browse a b")


def test_the_widget_state_is_json_for_the_front_end(recorded: InteractiveShell) -> None:
    import json

    widget = rlam_jupyter.browse()
    widget.seq = 3
    state: dict[str, Any] = widget.get_state()
    json.dumps({k: v for k, v in state.items() if not k.startswith("_")})


def test_a_figure_output_shows_its_image(shell: InteractiveShell) -> None:
    pytest.importorskip("matplotlib")
    import base64

    from rlam_jupyter.values import figures

    cell = '%%rlam --run figs --seed 1\ndata = load_dataset(name="iris")\n'
    cell += 'fig = plot(data=data, x="sepal width (cm)", y="petal width (cm)")\n'
    assert shell.run_cell(cell).success
    widget = rlam_jupyter.browse()
    widget.seq = 2
    (output,) = widget.detail["output_artifacts"]
    assert output["image"].startswith("data:image/png;base64,")
    con = rlam_jupyter.connect()
    (path,) = con.execute(
        "SELECT object_path FROM artifacts WHERE artifact_id = ?", [output["artifact_id"]]
    ).fetchone()
    stored = figures.unpack((Path(widget.store) / path).read_bytes()).png
    assert base64.b64decode(output["image"].split(",", 1)[1]) == stored
    widget.seq = 1
    assert widget.detail["output_artifacts"][0]["image"] is None
