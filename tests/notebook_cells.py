"""Build a notebook from cell sources and execute it in a real kernel (nbclient)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat

from rlam_jupyter.frontends.demo import run_notebook


def execute_cells(folder: Path, cells: list[str], name: str = "analysis.ipynb") -> list[Any]:
    """Write ``cells`` as a notebook in ``folder``, execute it there, return the executed
    cells (a cell tagged ``raises-exception`` may fail: start its source with ``# raises``)."""
    notebook = nbformat.v4.new_notebook()
    for source in cells:
        cell = nbformat.v4.new_code_cell(source)
        if source.startswith("# raises"):
            cell.metadata["tags"] = ["raises-exception"]
        notebook.cells.append(cell)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    nbformat.write(notebook, path)
    executed = run_notebook(path)
    return list(nbformat.read(executed, as_version=4).cells)


def output_text(cell: Any) -> str:
    """Everything a cell printed or displayed as text."""
    parts = []
    for output in cell.get("outputs", []):
        parts.append(str(output.get("text", "")))
        parts.append(str(output.get("data", {}).get("text/plain", "")))
        if output.get("output_type") == "error":
            parts.append(f"{output['ename']}: {output['evalue']}")
    return "\n".join(parts)
