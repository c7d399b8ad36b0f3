"""%%rlam python: a reviewed code cell runs as one recorded, external step."""

from __future__ import annotations

import json

import pytest
from IPython.core.interactiveshell import InteractiveShell

import rlam_jupyter
from rlam_jupyter.magics import StepFailedError


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
