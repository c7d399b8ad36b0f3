"""Which runs a notebook's bundle holds: every run its kernel created — ``%%rlam`` cells,
``%rlam fork`` cells, forks sent from the sidebar outside any cell — and the parents they
share steps with; never the runs of another notebook sharing the store. Real kernels
(nbclient), the real ``rlam`` CLI, re-execution in another folder."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import nbformat
import pytest
from rlam_process import run_rlam

import rlam_jupyter
from tests.kernel_driver import run_notebook_with_sidebar


def _root(name: str, seed: int, dataset: str) -> str:
    return (
        f"%%rlam --run {name} --seed {seed}\n"
        f'data = load_dataset(name="{dataset}")\n'
        "X_train, X_test, y_train, y_test = split(data=data, test_size=0.3)\n"
        "model = train_model(X=X_train, y=y_train, C=1.0)\n"
        "metrics = evaluate(model=model, X=X_test, y=y_test)"
    )


def _write(path: Path, cells: list[str]) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(notebook, path)
    return path


def _kernel_env(notebook: str | None) -> dict[str, str]:
    """The kernel's environment: as jupyter_server sets it (``JPY_SESSION_NAME``), or as
    plain nbclient / nbconvert leave it (nothing names the notebook)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RLAM_HOME", "JPY_SESSION_NAME")}
    if notebook is not None:
        env["JPY_SESSION_NAME"] = notebook
    return env


def _run_ids(store: Path) -> dict[str, str]:
    con = rlam_jupyter.connect(store)
    try:
        return dict(con.execute("SELECT name, run_id FROM runs").fetchall())
    finally:
        con.close()


def _bundle_runs(bundle: Path) -> set[str]:
    with zipfile.ZipFile(bundle) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    return {r["name"] for r in manifest["runs"]}


def _bundle_notebook(bundle: Path) -> dict[str, Any] | None:
    with zipfile.ZipFile(bundle) as archive:
        names = [n for n in archive.namelist() if n.startswith("notebook/")]
        return json.loads(archive.read(names[0])) if names else None


def _verify_elsewhere(bundle: Path, folder: Path) -> dict[str, Any]:
    folder.mkdir()
    copy = folder / bundle.name
    shutil.copy(bundle, copy)
    done = run_rlam("verify", copy.name, "--reexecute", "--json", cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@pytest.mark.parametrize("front_end", ["jupyterlab", "nbclient"])
def test_bundle_holds_cell_and_sidebar_forks_of_both_roots(tmp_path: Path, front_end: str) -> None:
    """JupyterLab names the notebook to its kernel (JPY_SESSION_NAME); plain nbclient does
    not. Either way the bundle holds both roots, the fork made in a cell and the fork
    the sidebar sent outside any cell — and not the other notebook's runs."""
    lab = front_end == "jupyterlab"
    other = _write(
        tmp_path / "other.ipynb",
        [
            "%load_ext rlam_jupyter",
            _root("other", 3, "iris"),
            "%rlam fork other --at 3 --set C=2.0",
        ],
    )
    run_notebook_with_sidebar(other, env=_kernel_env("other.ipynb" if lab else None))
    analysis = _write(
        tmp_path / "analysis.ipynb",
        [
            "%load_ext rlam_jupyter",
            _root("alpha", 1, "iris"),
            _root("beta", 2, "wine"),
            "%rlam fork alpha --at 3 --set C=0.1 --name alpha-c01",
        ],
    )
    store = tmp_path / ".rlam"
    replies = run_notebook_with_sidebar(
        analysis,
        # what the sidebar's "Fork from here" and then "Export bundle" send (commands.ts)
        [
            lambda: f"%rlam fork {_run_ids(store)['beta']} --at 3 --set C=10.0 --name beta-c10",
            lambda: "%rlam export analysis.ipynb",
        ],
        env=_kernel_env("analysis.ipynb" if lab else None),
        save_before_sidebar=True,
    )
    assert [r.status for r in replies] == ["ok", "ok"], [r.text for r in replies]
    ids = _run_ids(store)
    mine = {"alpha", "beta", "alpha-c01", "beta-c10"}
    assert mine | {"other"} <= set(ids)

    executed = nbformat.read(analysis, as_version=4)
    fork_outputs = [o for o in executed.cells[3].outputs if "rlam" in o.get("metadata", {})]
    assert fork_outputs, executed.cells[3].outputs
    assert fork_outputs[0]["metadata"]["rlam"]["run_id"] == ids["alpha-c01"]

    sidebar_bundle = tmp_path / "analysis.rlam.zip"
    assert _bundle_runs(sidebar_bundle) == mine, replies[1].text
    assert _bundle_notebook(sidebar_bundle) is not None

    done = run_rlam("export", "analysis.ipynb", "--out", "cli.zip", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _bundle_runs(tmp_path / "cli.zip") == mine

    report = _verify_elsewhere(tmp_path / "cli.zip", tmp_path / "reviewer")
    reexecuted = {(o["run_id"], o["outcome"]) for o in report["reexecution"]}
    for name in ("alpha-c01", "beta-c10"):
        assert (ids[name], "identical") in reexecuted, report["reexecution"]


def test_export_of_a_notebook_that_only_forked_and_replayed(tmp_path: Path) -> None:
    """No ``%%rlam`` cell: the replay and fork outputs name their runs in the cell metadata."""
    source = _write(
        tmp_path / "source.ipynb",
        ["%load_ext rlam_jupyter", _root("alpha", 1, "iris"), _root("gamma", 4, "wine")],
    )
    run_notebook_with_sidebar(source, env=_kernel_env(None))
    followup = _write(
        tmp_path / "followup.ipynb",
        [
            "%load_ext rlam_jupyter",
            "%rlam replay alpha --upto 2",
            "%rlam fork alpha --at 3 --set C=0.3 --name follow",
        ],
    )
    run_notebook_with_sidebar(followup, env=_kernel_env(None))
    ids = _run_ids(tmp_path / ".rlam")
    replayed = nbformat.read(followup, as_version=4).cells[1].outputs
    assert any(
        ids["alpha"] in o.get("metadata", {}).get("rlam", {}).get("run_ids", []) for o in replayed
    ), replayed

    done = run_rlam("export", "followup.ipynb", "--out", "followup.zip", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _bundle_runs(tmp_path / "followup.zip") == {"alpha", "follow"}
    _verify_elsewhere(tmp_path / "followup.zip", tmp_path / "reviewer")


def test_in_kernel_export_under_nbclient_includes_the_notebook(tmp_path: Path) -> None:
    """nbclient tells the kernel nothing but its folder: the notebook is the one here
    whose cells this kernel ran (a decoy sharing two of them is not it)."""
    cells = [
        "%load_ext rlam_jupyter",
        _root("alpha", 1, "iris"),
        "%rlam fork alpha --at 3 --set C=0.1 --name alpha-c01",
        "%rlam export --out inkernel.zip",
    ]
    _write(tmp_path / "decoy.ipynb", [cells[0], cells[3]])
    notebook = _write(tmp_path / "analysis.ipynb", cells)
    run_notebook_with_sidebar(notebook, env=_kernel_env(None))
    executed = nbformat.read(notebook, as_version=4)
    printed = "".join(o.get("text", "") for o in executed.cells[3].outputs)
    bundle = tmp_path / "inkernel.zip"
    assert _bundle_runs(bundle) == {"alpha", "alpha-c01"}
    inside = _bundle_notebook(bundle)
    assert inside is not None, printed
    assert ["".join(c["source"]) for c in inside["cells"]] == cells
    assert "analysis.ipynb" in printed


def test_export_says_when_it_cannot_find_the_notebook(shell: Any, tmp_path: Path) -> None:
    """No path from the front end and no notebook here holding this kernel's cells: the
    bundle is written without one, and the output says so and how to include it."""
    from IPython.utils.capture import capture_output

    shell.run_cell('%%rlam --run lone --seed 1 --quiet\ndata = load_dataset(name="iris")\n')
    with capture_output() as out:
        shell.run_cell("%rlam export --out lone.zip", store_history=True)
    assert _bundle_notebook(tmp_path / "lone.zip") is None
    assert "no notebook" in out.stdout
    assert "%rlam export path/to/notebook.ipynb" in out.stdout

    for name in ("a.ipynb", "b.ipynb"):  # two copies: which one is ambiguous
        _write(tmp_path / name, ["%rlam export --out twice.zip"])
    with capture_output() as out:
        shell.run_cell("%rlam export --out twice.zip", store_history=True)
    assert _bundle_notebook(tmp_path / "twice.zip") is None
    assert "a.ipynb" in out.stdout
    assert "b.ipynb" in out.stdout
    assert "%rlam export path/to/notebook.ipynb" in out.stdout


def test_papermill_injected_path_names_the_notebook(shell: Any, tmp_path: Path) -> None:
    """papermill --inject-paths puts PAPERMILL_INPUT_PATH/OUTPUT_PATH into the namespace
    (a parameters cell); the executed output notebook is the one that goes in."""
    _write(tmp_path / "in.ipynb", ["%load_ext rlam_jupyter"])
    _write(tmp_path / "out.ipynb", ["%load_ext rlam_jupyter"])
    shell.run_cell('PAPERMILL_INPUT_PATH = "in.ipynb"\nPAPERMILL_OUTPUT_PATH = "out.ipynb"\n')
    shell.run_cell('%%rlam --run pm --seed 1 --quiet\ndata = load_dataset(name="iris")\n')
    shell.run_cell("%rlam export --out pm.zip", store_history=True)
    with zipfile.ZipFile(tmp_path / "pm.zip") as archive:
        assert [n for n in archive.namelist() if n.startswith("notebook/")] == [
            "notebook/out.ipynb"
        ]


def test_every_run_command_output_names_its_runs(shell: Any) -> None:
    """One mechanism: whatever a ``%rlam`` command shows about runs carries their ids in
    the output metadata, as ``%%rlam`` cells do."""
    shell.run_cell(
        '%%rlam --run base --seed 1 --quiet\ndata = load_dataset(name="iris")\n'
        "X_train, X_test, y_train, y_test = split(data=data, test_size=0.3)\n"
    )
    outputs = {
        "fork": shell.run_line_magic("rlam", "fork base --at 2 --set test_size=0.4 --name f"),
        "replay": shell.run_line_magic("rlam", "replay base"),
        "status": shell.run_line_magic("rlam", "status"),
    }
    ids = _run_ids(Path(".rlam"))
    outputs["diff"] = shell.run_line_magic("rlam", "diff base f")
    expected = {
        "fork": {ids["f"], ids["base"]},
        "replay": {ids["base"]},
        "status": {ids["f"]},
        "diff": {ids["base"], ids["f"]},
    }
    for command, value in outputs.items():
        data, metadata = shell.display_formatter.format(value)
        assert {"text/html", "text/plain"} <= set(data), command
        assert set(metadata["rlam"]["run_ids"]) == expected[command], command
        recorded = command in ("fork", "status")  # replay and diff only read their runs
        assert metadata["rlam"]["recorded"] is recorded, command
    _, fork_meta = shell.display_formatter.format(outputs["fork"])
    assert fork_meta["rlam"]["run_id"] == ids["f"]
    assert len(fork_meta["rlam"]["step_ids"]) == 1  # the fork recorded step 2 only


def test_agent_fork_is_recorded_as_the_notebooks_and_exported(
    shell: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``%%rlam agent --fork`` records the kernel's notebook with the fork, like ``%rlam fork``."""
    monkeypatch.setenv("JPY_SESSION_NAME", "agentnb.ipynb")
    body = (
        'data = load_dataset(name="iris")\n'
        "X_train, X_test, y_train, y_test = split(data=data)\n"
        "model = train_model(X=X_train, y=y_train)\n"
    )
    forked = body.replace("y=y_train)", 'y=y_train, model="random_forest")')
    cells = [
        f"%%rlam agent --run base --quiet\n{body}",
        f"%%rlam agent --fork base --at 3 --run rf --quiet\n{forked}",
        "%rlam export --out agent.zip",
    ]
    _write(tmp_path / "agentnb.ipynb", cells)
    for source in cells:
        assert shell.run_cell(source, store_history=True).success, source
    con = rlam_jupyter.connect(tmp_path / ".rlam")
    try:
        recorded = dict(con.execute("SELECT name, notebook FROM runs").fetchall())
    finally:
        con.close()
    assert recorded == {"base": "agentnb.ipynb", "rf": "agentnb.ipynb"}
    assert _bundle_runs(tmp_path / "agent.zip") == {"base", "rf"}
    assert _bundle_notebook(tmp_path / "agent.zip") is not None
