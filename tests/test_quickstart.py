"""The quickstart notebook in a real kernel (nbclient), as the README's demo command runs it."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

import rlam_jupyter
from rlam_jupyter.demo import run_notebook

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_executes_and_leaves_a_queryable_trace(tmp_path: Path) -> None:
    notebook = tmp_path / "quickstart.ipynb"
    shutil.copy(ROOT / "notebooks" / "quickstart.ipynb", notebook)
    executed = run_notebook(notebook)
    con = rlam_jupyter.connect(tmp_path / ".rlam")
    succeeded = con.execute("SELECT count(*) FROM steps WHERE status = 'succeeded'").fetchone()
    assert succeeded is not None
    assert succeeded[0] >= 5
    rejected = con.execute(
        "SELECT action, error_message FROM steps WHERE status = 'rejected'"
    ).fetchall()
    assert rejected
    assert "C=-1.0" in rejected[0][1]
    edge_types = {t for (t,) in con.execute("SELECT DISTINCT type FROM edges").fetchall()}
    assert {"used", "generated", "derived_from"} <= edge_types
    # each succeeded step after the first used something and generated something
    orphans = con.execute(
        "SELECT action FROM steps s WHERE status = 'succeeded' AND action <> 'load_dataset' AND NOT EXISTS "
        "(SELECT 1 FROM edges e WHERE e.src = s.step_id AND e.type = 'used')"
    ).fetchall()
    assert orphans == []
    # a refused proposal is not a failure: nothing ran, so the run still succeeded
    assert con.execute("SELECT status FROM runs").fetchall() == [("succeeded",)]
    cells = nbformat.read(executed, as_version=4).cells
    rlam_outputs = [
        o
        for c in cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if "rlam" in o.get("metadata", {})
    ]
    assert rlam_outputs
    assert all(o["metadata"]["rlam"]["run_id"] for o in rlam_outputs)
