"""notebooks/agent.ipynb in a real kernel (nbclient): the scripted agent end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

import rlam_jupyter
from rlam_jupyter.frontends.demo import run_notebook

ROOT = Path(__file__).resolve().parent.parent


def test_agent_notebook_executes_offline(tmp_path: Path) -> None:
    notebook = tmp_path / "agent.ipynb"
    shutil.copy(ROOT / "notebooks" / "agent.ipynb", notebook)
    executed = run_notebook(notebook)

    con = rlam_jupyter.connect(tmp_path / ".rlam")
    runs = dict(con.execute("SELECT name, status FROM runs").fetchall())
    assert runs == {"agent-demo": "succeeded", "agent-demo-rf": "succeeded"}
    steps = con.execute(
        "SELECT s.seq, s.action, s.status, s.recovers IS NOT NULL FROM steps s JOIN runs r "
        "USING (run_id) WHERE r.name = 'agent-demo' ORDER BY s.seq"
    ).fetchall()
    assert [s[2] for s in steps] == ["succeeded"] * 3 + ["rejected", "succeeded", "succeeded"]
    assert steps[4][3]  # the valid train_model recovers the refused one
    assert (
        con.execute("SELECT count(*) FROM llm_calls WHERE provider = 'scripted'").fetchone()[0] >= 7
    )

    text = "\n".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
        for cell in nbformat.read(executed, as_version=4).cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "skipped: set RLAM_AGENT_DEMO_LLM=1" in text
    assert "Trace Completeness" in text
    assert "error" not in {
        o.get("output_type")
        for c in nbformat.read(executed, as_version=4).cells
        for o in c.get("outputs", [])
    }
