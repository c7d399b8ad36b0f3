"""The quickstart notebook in a real kernel (nbclient), as the README's demo command runs it."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

import rlam_jupyter
from rlam_jupyter.frontends.demo import run_notebook

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
    runs = con.execute(
        "SELECT name, status, parent_run_id IS NOT NULL, fork_seq FROM runs ORDER BY name"
    )
    assert runs.fetchall() == [
        ("breast-cancer", "succeeded", False, None),
        ("breast-cancer-C0.1", "succeeded", True, 4),
    ]
    # the fork recorded only its own steps (4 and 5); 1-3 are shared by reference
    fork_steps = con.execute(
        "SELECT seq, params FROM steps JOIN runs USING (run_id) WHERE name = 'breast-cancer-C0.1' ORDER BY seq"
    ).fetchall()
    assert [seq for seq, _ in fork_steps] == [4, 5]
    assert '"C": 0.1' in fork_steps[0][1]
    text = "\n".join(
        str(o.get("data", {}).get("text/plain", "")) + str(o.get("text", ""))
        for c in nbformat.read(executed, as_version=4).cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    assert "param C: 1.0 → 0.1" in text  # the diff
    assert "Reproducibility Success    1.000" in text  # the audit re-executed every step
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
