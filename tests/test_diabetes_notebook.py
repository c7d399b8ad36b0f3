"""A new user's notebook end to end: executed headlessly, audited, exported, verified elsewhere.

``notebooks/diabetes-ridge.ipynb`` has five actions of its own (one returns a matplotlib
figure, one a NamedTuple), a failing step and its recovery, and a ``%%rlam python`` cell.
Everything the guarantees promise is checked on it, through the CLI a reviewer would use.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rlam_process import run_rlam

import rlam_jupyter
from rlam_jupyter.frontends.demo import run_notebook

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("analysis")
    shutil.copy(ROOT / "notebooks" / "diabetes-ridge.ipynb", folder)
    run_notebook(folder / "diabetes-ridge.ipynb")
    return folder


def test_the_headless_run_ends_and_its_trace_is_complete(executed: Path) -> None:
    con = rlam_jupyter.connect(executed / ".rlam")
    assert con.execute("SELECT name, status FROM runs").fetchall() == [
        ("diabetes-ridge", "succeeded")  # ended at kernel shutdown; the failure was recovered
    ]
    statuses = [s for (s,) in con.execute("SELECT status FROM steps ORDER BY seq").fetchall()]
    assert statuses == ["succeeded"] * 3 + ["failed"] + ["succeeded"] * 6
    kind = con.execute(
        "SELECT a.kind FROM artifacts a JOIN steps s USING (step_id) "
        "WHERE s.action = 'residual_plot'"
    ).fetchone()
    assert kind == ("figure",)


def test_the_cli_audit_re_executes_every_notebook_action_and_names_the_external_cell(
    executed: Path,
) -> None:
    done = run_rlam("audit", "diabetes-ridge", "--json", cwd=executed)
    report = json.loads(done.stdout)
    metrics = report["metrics"]
    assert metrics["trace_completeness"] == 1.0
    assert metrics["failure_visibility"] == 1.0
    # 9 of the 10 steps re-execute to the recorded hashes (the figure included); the
    # python cell is external: never re-run, named, and never counted as reproduced
    assert metrics["reproducibility_success"] == pytest.approx(0.9)
    assert report["runs"][0]["missing"] == []
    (skipped,) = report["not_verified"]
    assert "step 10 (python)" in skipped
    assert "external" in skipped
    assert done.returncode == 1
    assert run_rlam("audit", "diabetes-ridge", "--allow-skipped", cwd=executed).returncode == 0


def test_the_bundle_verifies_by_re_execution_in_another_folder(
    executed: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "diabetes.zip"
    exported = run_rlam("export", "diabetes-ridge.ipynb", "--out", str(bundle), cwd=executed)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    elsewhere = tmp_path / "reviewer"
    elsewhere.mkdir()
    shutil.copy(bundle, elsewhere)
    done = run_rlam(
        "verify", "diabetes.zip", "--reexecute", "--allow-skipped", "--json", cwd=elsewhere
    )
    report = json.loads(done.stdout)
    assert done.returncode == 0, done.stdout
    outcomes = {(o["seq"], o["action"]): o["outcome"] for o in report["reexecution"]}
    assert outcomes[(4, "split")] == "reproduced failure"
    assert outcomes[(8, "residual_plot")] == "identical"
    assert outcomes[(10, "python")] == "not re-executable"
    assert sorted(set(outcomes.values())) == [
        "identical",
        "not re-executable",
        "reproduced failure",
    ]
    strict = run_rlam("verify", "diabetes.zip", "--reexecute", cwd=elsewhere)
    assert strict.returncode == 1
    assert "python: not re-executable (external" in strict.stdout


def test_an_imported_bundle_forks_with_the_notebook_actions_rebuilt(
    executed: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "diabetes.zip"
    assert (
        run_rlam("export", "diabetes-ridge.ipynb", "--out", str(bundle), cwd=executed).returncode
        == 0
    )
    reviewer = tmp_path / "reviewer"
    reviewer.mkdir()
    imported = run_rlam("import", str(bundle), cwd=reviewer)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    script = (
        "import rlam_jupyter as rlam\n"
        "report = rlam.fork('diabetes-ridge', at=6, params={'n_splits': 10}, store='.rlam')\n"
        "print([(r.seq, r.action, r.status) for r in report.results])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=reviewer, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(
        [
            (6, "cv_ridge", "succeeded"),
            # 10 folds pick the same alpha: the refitted model is the same bytes, so what
            # only depends on it is served from the cache...
            (7, "regression_metrics", "cached"),
            # ...but not a plot: the notebook drew under `%matplotlib inline`'s settings,
            # this process has matplotlib's defaults (part of a figure action's identity)
            (8, "residual_plot", "succeeded"),
            (9, "summary_table", "succeeded"),
            (10, "python", "succeeded"),
        ]
    )


def test_notebook_actions_rebuilt_elsewhere_have_the_identity_they_were_recorded_with(
    executed: Path, tmp_path: Path
) -> None:
    """The rebuilt source is faithful: the same code, defaults, classes and values, so
    the identity computed in the fresh process equals the recorded one (no note) — but
    for the plot, drawn in the notebook under `%matplotlib inline`'s settings: the same
    code in another environment, which the note names."""
    shutil.copytree(executed / ".rlam", tmp_path / ".rlam")
    done = run_rlam("replay", "diabetes-ridge", "--verify", "--json", cwd=tmp_path)
    steps = {s["seq"]: s for s in json.loads(done.stdout)["steps"]}
    notebook_actions = {
        "add_features",
        "cv_ridge",
        "regression_metrics",
        "residual_plot",
        "summary_table",
    }
    checked = {s["action"] for s in steps.values() if s["action"] in notebook_actions}
    assert checked == notebook_actions
    for step in steps.values():
        if step["action"] == "residual_plot":
            (note,) = step["differences"]
            assert "the same code as recorded, in another environment (library settings" in note
            assert step["verify"] == "identical"
        elif step["action"] in notebook_actions:
            assert (step["verify"], step["differences"]) == ("identical", []), step
