"""%%rlam python: a reviewed code cell runs as one recorded, external step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

import rlam_jupyter
from rlam_jupyter.frontends.magics.cell import StepFailedError


def test_python_cell_is_one_recorded_step_with_inputs_and_outputs(shell: InteractiveShell) -> None:
    shell.run_cell_magic("rlam", "--run r --seed 1 --quiet", 'data = load_dataset(name="iris")')
    shell.run_cell_magic(
        "rlam",
        "python --inputs data --outputs ratio wide",
        "ratio = float((data['petal length (cm)'] / data['petal width (cm)']).mean())\n"
        "wide = data[data['sepal width (cm)'] > 3.5]\n",
    )
    assert isinstance(shell.user_ns["ratio"], float)
    assert len(shell.user_ns["wide"]) < 150
    con = rlam_jupyter.connect()
    step = con.execute(
        "SELECT action, status, determinism, params, inputs, outputs FROM steps WHERE seq = 2"
    ).fetchone()
    assert step is not None
    action, status, determinism, params, inputs, outputs = step
    assert (action, status, determinism) == ("python", "succeeded", "external")
    assert "petal length" in json.loads(params)["source"]
    assert set(json.loads(inputs)) == {"data"}
    assert set(json.loads(outputs)) == {"ratio", "wide"}
    # outputs of a python cell are ordinary artifacts: later steps can use them
    shell.run_cell_magic("rlam", "--quiet", "summary = describe(data=wide)")
    assert "python" not in rlam_jupyter.registry()  # never offered to agents as a tool


def test_python_cell_failure_is_recorded_and_undeclared_names_are_refused(
    shell: InteractiveShell,
) -> None:
    with pytest.raises(StepFailedError, match="ZeroDivisionError"):
        shell.run_cell_magic("rlam", "python --outputs x", "x = 1 / 0")
    with pytest.raises(StepFailedError, match="did not define the declared output"):
        shell.run_cell_magic("rlam", "python --outputs y", "z = 3")
    with pytest.raises(StepFailedError, match="no earlier step of this run produced"):
        shell.run_cell_magic("rlam", "python --inputs nowhere --outputs y", "y = nowhere")
    statuses = rlam_jupyter.connect().execute("SELECT status FROM steps ORDER BY seq").fetchall()
    assert statuses == [("failed",), ("failed",), ("rejected",)]


def test_forks_and_verify_rerun_a_recorded_python_cell_in_a_real_kernel(tmp_path: Path) -> None:
    from notebook_cells import execute_cells, output_text

    cells = execute_cells(
        tmp_path,
        [
            "%load_ext rlam_jupyter",
            '%%rlam --run r --seed 3 --quiet\ndata = load_dataset(name="iris")',
            "%%rlam python --run r --inputs data --outputs n\nn = int(len(data))",
            "%%rlam python --run r --pure --inputs data --outputs half\nhalf = data.iloc[: len(data) // 2]",
            '%rlam fork r --at 1 --set name="wine" --name r-wine',
            "print(n, len(half))",
            "%rlam fork r --at 1 --name r-same",
            "print(n, len(half))",
            "%rlam replay r --verify",
        ],
    )
    assert output_text(cells[5]).split() == ["178", "89"]
    assert output_text(cells[7]).split() == ["150", "75"]
    con = rlam_jupyter.connect(tmp_path / ".rlam")
    rows = con.execute(
        "SELECT r.name, s.seq, s.action, s.status FROM steps s JOIN runs r USING (run_id) "
        "WHERE r.name LIKE 'r-%' ORDER BY r.name, s.seq"
    ).fetchall()
    assert rows == [
        ("r-same", 1, "load_dataset", "cached"),
        ("r-same", 2, "python", "succeeded"),  # external: re-run from its recorded source
        ("r-same", 3, "python", "cached"),  # pure, inputs unchanged: served from the cache
        ("r-wine", 1, "load_dataset", "succeeded"),
        ("r-wine", 2, "python", "succeeded"),
        ("r-wine", 3, "python", "succeeded"),
    ]
    verified = output_text(cells[8])
    assert "diverged" not in verified
    assert "identical" in verified
