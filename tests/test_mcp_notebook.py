"""``notebooks/mcp.ipynb`` in a real kernel (nbclient), as a user runs it: it starts a real
Jupyter server and drives ``/rlam/mcp`` with the SDK's client; the steps land in the
attached notebook's trace, refusal and cache hit included, and the audit scores 1.0."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

import rlam_jupyter
from rlam_jupyter.frontends.demo import run_notebook

ROOT = Path(__file__).resolve().parent.parent


def test_the_mcp_notebook_drives_an_attached_notebook(tmp_path: Path) -> None:
    notebook = tmp_path / "mcp.ipynb"
    shutil.copy(ROOT / "notebooks" / "mcp.ipynb", notebook)
    executed = nbformat.read(run_notebook(notebook), as_version=4)
    con = rlam_jupyter.connect(tmp_path / "mcp-demo" / ".rlam")
    steps = con.sql(
        "SELECT s.action, s.status, s.origin, c.model, parse_filename(r.notebook) FROM steps s "
        "JOIN runs r USING (run_id) JOIN llm_calls c ON c.call_id = s.proposed_by ORDER BY s.seq"
    ).fetchall()
    assert [(a, s) for a, s, *_ in steps] == [
        ("load_dataset", "succeeded"),
        ("split", "succeeded"),
        ("train_model", "rejected"),
        ("train_model", "succeeded"),
        ("evaluate", "succeeded"),
        ("evaluate", "cached"),
    ]
    assert {tuple(rest) for _a, _s, *rest in steps} == {("mcp", "scripted-agent", "analysis.ipynb")}
    outputs = "".join(
        o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs
    )
    assert "Trace Completeness         1.000" in outputs
    assert "Failure Visibility         1.000" in outputs
    assert "Reproducibility Success    1.000" in outputs
