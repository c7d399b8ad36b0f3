"""Find the notebook file a kernel is running, for ``%rlam export`` without a path.

Front ends tell the kernel different things: jupyter_server sets ``JPY_SESSION_NAME``
(the notebook's path from the server root; ipykernel copies it to ``__session__``);
papermill with ``--inject-paths`` puts ``PAPERMILL_OUTPUT_PATH``/``PAPERMILL_INPUT_PATH``
into the namespace; nbclient and ``jupyter nbconvert --execute`` say nothing but the
working folder. There, the notebook is the one in the folder holding the cell being
run and most of the cells this kernel ran; when no file or more than one fits, the
lookup says so instead of guessing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PAPERMILL_PATHS = ("PAPERMILL_OUTPUT_PATH", "PAPERMILL_INPUT_PATH")
"""papermill's injected parameters, the executed output first (it is saved after each cell)."""

INCLUDE_HINT = "to include it: %rlam export path/to/notebook.ipynb"


@dataclass(frozen=True)
class NotebookLookup:
    """The kernel's notebook file, how it was found, or why it was not."""

    path: Path | None
    how: str

    def note(self) -> str:
        if self.path is None:
            return f"no notebook in the bundle: {self.how}; {INCLUDE_HINT}"
        return f"notebook {self.path.name} found {self.how}"


def find_kernel_notebook(
    session_name: str | None,
    namespace: Mapping[str, Any],
    executed: Sequence[str],
    cwd: Path,
) -> NotebookLookup:
    """The notebook of a kernel whose session is named ``session_name`` (or None), with
    ``namespace`` and the raw inputs it ``executed`` (the last one running now)."""
    if session_name:
        # the path is from the server root; the kernel runs in the notebook's folder
        for candidate in (Path(session_name), cwd / Path(session_name).name):
            if candidate.is_file():
                return NotebookLookup(candidate, "from the kernel's session (JPY_SESSION_NAME)")
    for name in PAPERMILL_PATHS:
        value = namespace.get(name)
        if isinstance(value, str) and (cwd / value).is_file():
            return NotebookLookup(cwd / value, f"from papermill's {name}")
    return _by_cells(executed, cwd, session_name)


def _by_cells(executed: Sequence[str], cwd: Path, session_name: str | None) -> NotebookLookup:
    told = (
        f"the front end named {session_name!r}, which is not a file here; " if session_name else ""
    )
    inputs = [text.strip() for text in executed if text.strip()]
    if not inputs:
        return NotebookLookup(None, f"{told}this kernel has run no cell to match")
    current, ran = inputs[-1], set(inputs)
    scores: dict[Path, int] = {}
    for candidate in sorted(cwd.glob("*.ipynb")):
        sources = _code_sources(candidate)
        if current in sources:
            scores[candidate] = len(ran & sources)
    if not scores:
        return NotebookLookup(
            None,
            f"{told}the front end did not name the notebook, and no .ipynb file in {cwd} "
            "holds the cell running now (is it saved there?)",
        )
    best = max(scores.values())
    fits = [path for path, score in scores.items() if score == best]
    if len(fits) > 1:
        names = ", ".join(path.name for path in fits)
        return NotebookLookup(
            None, f"{told}the cells this kernel ran are in {len(fits)} notebooks here ({names})"
        )
    return NotebookLookup(
        fits[0], f"by its cells ({best} of the {len(ran)} this kernel ran are in it)"
    )


def _code_sources(path: Path) -> set[str]:
    try:
        notebook = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return set()
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    sources = set()
    for cell in cells if isinstance(cells, list) else []:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            source = cell.get("source", "")
            sources.add(("".join(source) if isinstance(source, list) else str(source)).strip())
    return sources
