"""%%rlam and %rlam in a real IPython shell: the quickstart workflow, determinism, errors."""

from __future__ import annotations

import json

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import rlam_jupyter
from rlam_jupyter.frontends.magics.cell import StepFailedError

WORKFLOW = """\
data = load_dataset(name="breast_cancer")
X_train, X_test, y_train, y_test = split(data=data, test_size=0.25)
X_train_s, X_test_s = scale(X_train=X_train, X_test=X_test)
model = train_model(X=X_train_s, y=y_train, model="random_forest", n_estimators=25)
metrics = evaluate(model=model, X=X_test_s, y=y_test)
"""


def test_workflow_runs_binds_names_and_records_a_typed_graph(shell: InteractiveShell) -> None:
    shell.run_cell_magic("rlam", "--run bc --seed 42 --quiet", WORKFLOW)
    ns = shell.user_ns
    assert set(ns["metrics"]) == {"accuracy", "f1", "roc_auc"}
    assert ns["metrics"]["accuracy"] > 0.9
    assert hasattr(ns["model"], "predict")
    con = rlam_jupyter.connect()
    steps = con.execute(
        "SELECT seq, action, status, seed, outputs FROM steps ORDER BY seq"
    ).fetchall()
    assert [s[1] for s in steps] == ["load_dataset", "split", "scale", "train_model", "evaluate"]
    assert {s[2] for s in steps} == {"succeeded"}
    assert all(s[3] is not None for s in steps)
    edges = dict(con.execute("SELECT type, count(*) FROM edges GROUP BY type").fetchall())
    assert edges["used"] == 1 + 2 + 2 + 3  # split, scale, train, evaluate inputs
    assert edges["generated"] == 1 + 4 + 2 + 1 + 1
    # every 'used' edge points at an artifact some step generated
    dangling = con.execute(
        "SELECT count(*) FROM edges u WHERE u.type = 'used' AND u.dst NOT IN "
        "(SELECT dst FROM edges WHERE type = 'generated')"
    ).fetchone()
    assert dangling == (0,)
    # the evaluate step used exactly the model artifact the train step generated
    model_id = json.loads(steps[3][4])["result"]
    used = con.execute(
        "SELECT e.dst FROM edges e JOIN steps s ON e.src = s.step_id "
        "WHERE s.action = 'evaluate' AND e.type = 'used' AND e.role = 'model'"
    ).fetchone()
    assert used == (model_id,)


def test_same_seed_same_hashes_for_seeded_random_forest(shell: InteractiveShell) -> None:
    shell.run_cell_magic("rlam", "--run first --seed 7 --quiet --no-cache", WORKFLOW)
    shell.run_cell_magic("rlam", "--run second --seed 7 --quiet --no-cache", WORKFLOW)
    shell.run_cell_magic("rlam", "--run third --seed 8 --quiet --no-cache", WORKFLOW)
    con = rlam_jupyter.connect()
    rows = con.execute(
        "SELECT r.name, s.outputs, s.status FROM steps s JOIN runs r USING (run_id) "
        "WHERE s.action = 'train_model'"
    ).fetchall()
    by_run = {name: outputs for name, outputs, _ in rows}
    assert {status for *_, status in rows} == {"succeeded"}  # really executed, not cached
    assert by_run["first"] == by_run["second"]
    assert by_run["first"] != by_run["third"]


def test_dry_run_checks_and_records_without_executing(shell: InteractiveShell) -> None:
    shell.run_cell_magic("rlam", "--dry-run --quiet", 'data = load_dataset(name="iris")')
    assert "data" not in shell.user_ns
    status = rlam_jupyter.connect().execute("SELECT status FROM steps").fetchall()
    assert status == [("accepted",)]


def test_failed_step_stops_the_cell_is_recorded_and_explained(shell: InteractiveShell) -> None:
    body = (
        'data = load_dataset(name="iris")\n'
        'bad = filter_rows(data=data, column="nope", op=">", value=1)\n'
        "summary = describe(data=bad)\n"
    )
    with pytest.raises(StepFailedError) as info:
        shell.run_cell_magic("rlam", "--quiet", body)
    assert "step 2 (filter_rows) failed: KeyError" in str(info.value)
    assert "--recover" in str(info.value)
    rendered = "\n".join(info.value._render_traceback_())
    assert "Traceback" not in rendered
    assert "-v" in rendered
    assert "data" in shell.user_ns
    assert "summary" not in shell.user_ns
    rows = (
        rlam_jupyter.connect()
        .execute("SELECT action, status, error_type, traceback FROM steps ORDER BY seq")
        .fetchall()
    )
    assert [(a, s) for a, s, *_ in rows] == [
        ("load_dataset", "succeeded"),
        ("filter_rows", "failed"),
    ]
    assert rows[1][2] == "KeyError"
    assert "catalogue.py" in rows[1][3]  # the action's own frame, for the audit


def test_status_new_end_and_help(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run_line_magic("rlam", "new analysis --seed 3")
    shell.run_cell_magic("rlam", "--quiet", 'd = load_dataset(name="wine")')
    view = shell.run_line_magic("rlam", "status")
    assert "analysis" in repr(view)
    assert "load_dataset" in view._repr_html_()
    shell.run_line_magic("rlam", "end")
    assert "ended: succeeded" in capsys.readouterr().out
    assert rlam_jupyter.connect().execute("SELECT status, seed FROM runs").fetchall() == [
        ("succeeded", 3)
    ]
    with pytest.raises(UsageError, match="no run 'nope' in this kernel"):
        shell.run_line_magic("rlam", "end nope")
    with pytest.raises(UsageError, match="unknown %rlam command"):
        shell.run_line_magic("rlam", "frobnicate")
    doc = shell.find_cell_magic("rlam").__doc__ or ""
    assert "--seed" in doc
    assert "--dry-run" in doc


def test_a_run_keeps_its_seed(shell: InteractiveShell) -> None:
    shell.run_cell_magic("rlam", "--run r --seed 1 --quiet", 'd = load_dataset(name="iris")')
    with pytest.raises(UsageError, match="uses seed 1"):
        shell.run_cell_magic("rlam", "--run r --seed 2 --quiet", 'e = load_dataset(name="iris")')


def test_output_is_an_html_table_with_step_metadata(shell: InteractiveShell) -> None:
    from IPython.core.formatters import DisplayFormatter

    published: list[tuple[dict[str, str], dict[str, object]]] = []
    original = shell.display_pub.publish

    def capture(
        data: dict[str, str], metadata: dict[str, object] | None = None, **kw: object
    ) -> None:
        published.append((data, metadata or {}))

    shell.display_pub.publish = capture  # type: ignore[method-assign]
    try:
        shell.run_cell_magic("rlam", "", 'd = load_dataset(name="iris")')
    finally:
        shell.display_pub.publish = original  # type: ignore[method-assign]
    assert isinstance(shell.display_formatter, DisplayFormatter)
    data, metadata = published[-1]
    assert "<table class='rlam-steps'>" in data["text/html"]
    assert "load_dataset" in data["text/plain"]
    assert metadata["rlam"]["step_ids"][0].endswith("-000001")  # type: ignore[index]
