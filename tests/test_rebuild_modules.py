"""Actions defined in a user's own file, replayed where that file is not: every action of
the file is rebuilt from the recorded source with the identity it was recorded with,
in a fresh process (``rlam replay --verify``, ``rlam audit``, a new kernel's
``%rlam replay --verify``) and beside an edited copy of the module that the process
already runs."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path

import pytest
from rlam_process import run_python, run_rlam

from rlam_jupyter.actions.rebuild import RecordedSource, rebuild
from rlam_jupyter.actions.registry import Registry, collecting_actions
from rlam_jupyter.actions.source import MODULE, ActionSource, capture

ACTS = '''\
"""Actions of a user's file; importing it leaves a line in ``imports.log``."""

from pathlib import Path
from typing import Annotated

import rlam_jupyter
from rlam_jupyter.actions.registry import Input

with Path("imports.log").open("a") as log:
    log.write(__name__ + "\\n")


@rlam_jupyter.action
def numbers(start: int, count: int = 3) -> list[int]:
    return list(range(start, start + count))


@rlam_jupyter.action
def doubled(values: Annotated[list[int], Input]) -> list[int]:
    return [2 * v for v in values]


@rlam_jupyter.action
def total(values: Annotated[list[int], Input]) -> int:
    return sum(values)
'''

WORKFLOW = """\
n = numbers(start=1)
d = doubled(values=n)
t = total(values=d)
m = numbers(start=5, count=2)
"""

RECORD = f"""\
import acts
from rlam_jupyter.actions.default_registry import registry
from rlam_jupyter.actions.proposal import parse_cell
from rlam_jupyter.engine import Engine

engine = Engine(".rlam", registry=registry())
run = engine.start_run("acts", seed=1)
engine.execute_all(run, parse_cell({WORKFLOW!r}, registry()))
engine.end_run(run)
"""


def record(folder: Path) -> Path:
    """A run of the three actions of ``acts.py``, recorded in a process of its own in ``folder``."""
    folder.mkdir(parents=True)
    (folder / "acts.py").write_text(ACTS, encoding="utf-8")
    (folder / "record.py").write_text(RECORD, encoding="utf-8")  # its folder is on sys.path
    done = run_python("record.py", cwd=folder)
    assert done.returncode == 0, done.stderr
    return folder / ".rlam"


def test_every_action_of_a_file_is_rebuilt_and_verified_in_a_fresh_process(
    tmp_path: Path,
) -> None:
    recorded = record(tmp_path / "analysis")
    elsewhere = tmp_path / "elsewhere"  # no acts.py: only the trace's recorded source
    shutil.copytree(recorded, elsewhere / ".rlam")
    done = run_rlam("replay", "acts", "--verify", "--json", cwd=elsewhere)
    report = json.loads(done.stdout)
    assert report["counts"] == {"identical": 4}, report["not_verified"]
    assert done.returncode == 0, done.stdout + done.stderr
    # one module serves every action of the file: executed once, as an import is
    assert (elsewhere / "imports.log").read_text().split() == ["acts"]
    audited = run_rlam("audit", "acts", "--json", cwd=elsewhere)
    metrics = json.loads(audited.stdout)["metrics"]
    assert metrics["reproducibility_success"] == 1.0
    assert audited.returncode == 0, audited.stdout + audited.stderr


def test_a_notebook_run_of_a_module_next_to_it_verifies_in_a_new_kernel_elsewhere(
    tmp_path: Path,
) -> None:
    from notebook_cells import execute_cells, output_text

    analysis = tmp_path / "analysis"
    analysis.mkdir()
    (analysis / "acts.py").write_text(ACTS, encoding="utf-8")
    execute_cells(
        analysis, ["%load_ext rlam_jupyter\nimport acts", "%%rlam --run nb --quiet\n" + WORKFLOW]
    )
    elsewhere = tmp_path / "elsewhere"  # a new kernel, without acts.py
    shutil.copytree(analysis / ".rlam", elsewhere / ".rlam")
    cells = execute_cells(
        elsewhere,
        [
            "%load_ext rlam_jupyter",
            "report = %rlam replay nb --verify\n"
            "print(dict(report.counts), report.to_json()['not_verified'])",
        ],
    )
    assert "{'identical': 4} []" in output_text(cells[1])
    assert (elsewhere / "imports.log").read_text().split() == ["acts"]


def test_an_edited_module_in_the_process_is_verified_with_the_recorded_copy(
    tmp_path: Path,
) -> None:
    recorded = record(tmp_path / "analysis")
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(recorded, elsewhere / ".rlam")
    # the module was edited since: the process runs the new code, the steps are checked
    # with the recorded copy, loaded beside it
    edited = ACTS.replace("2 * v for", "3 * v for").replace("sum(values)", "sum(values) + 1")
    (elsewhere / "acts.py").write_text(edited, encoding="utf-8")
    done = run_rlam("replay", "acts", "--verify", "--json", "--actions", "acts", cwd=elsewhere)
    report = json.loads(done.stdout)
    assert report["counts"] == {"identical": 4}, report["not_verified"]
    assert done.returncode == 0, done.stdout + done.stderr
    # the edited module, then the recorded copy once, for both edited actions
    imported = (elsewhere / "imports.log").read_text().split()
    assert len(imported) == 2, imported
    assert imported[0] == "acts"


def test_a_recorded_copy_loaded_beside_its_module_is_recorded_again_as_that_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fork re-records the actions it runs: one rebuilt beside an edited module must be
    recorded as the module it was recorded as, with the recorded file, not as a cell."""
    name = "acts_beside_edited"  # a module name no other test imports
    monkeypatch.chdir(tmp_path)  # where the files' imports.log goes
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / f"{name}.py").write_text(ACTS.replace("2 * v for", "3 * v for"))
    recorded = ActionSource(MODULE, name, files={f"{name}.py": ACTS})
    try:
        with collecting_actions(Registry()):  # the edited module, as the process runs it
            importlib.import_module(name)
        rebuilt = rebuild(
            [
                RecordedSource(
                    "doubled@recorded",
                    "doubled",
                    MODULE,
                    name,
                    recorded.payload(),
                    recorded.digest,
                    (),
                )
            ]
        )
    finally:
        sys.modules.pop(name, None)
    spec = rebuilt.by_version["doubled@recorded"]
    assert spec.func([1, 2]) == [2, 4]  # the recorded code, not the edited one
    again = capture(spec, spec.current_identity())
    assert (again.origin, again.module, dict(again.files)) == (MODULE, name, recorded.files)
    assert again.digest == recorded.digest
