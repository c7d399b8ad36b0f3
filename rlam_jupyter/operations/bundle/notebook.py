"""Match a notebook's cells to the recorded steps and write the run/step ids into cell metadata.

Three clues, strongest first: the cell id the front end sent with the step; the
``{"rlam": {"run_id", "run_ids", "step_ids"}}`` metadata of a cell's output (a ``%%rlam``
cell's, or any ``%rlam`` command's that shows runs); the
blake3 hash of the cell body (which survives a notebook saved without outputs),
narrowed by the execution count when the same body ran more than once.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from rlam_jupyter.values.digest import digest_bytes


@dataclass(frozen=True)
class StepCell:
    """What the trace recorded about the cell a step came from."""

    run_id: str
    step_id: str
    cell_id: str | None
    execution_count: int | None
    source_hash: str | None


def step_cells(steps: pa.Table, run_ids: Iterable[str]) -> list[StepCell]:
    """The cell clues of every step of ``run_ids`` (newest record of each step)."""
    wanted = set(run_ids)
    latest: dict[str, StepCell] = {}
    rows = steps.select(
        ["run_id", "step_id", "cell_id", "cell_execution_count", "cell_source_hash", "event_no"]
    ).to_pylist()
    for row in sorted(rows, key=lambda r: r["event_no"] or 0):
        if row["run_id"] in wanted:
            latest[row["step_id"]] = StepCell(
                row["run_id"],
                row["step_id"],
                row["cell_id"],
                row["cell_execution_count"],
                row["cell_source_hash"],
            )
    return [latest[k] for k in sorted(latest)]


def body_hashes(source: str) -> set[str]:
    """Hashes a ``%%rlam`` cell's body may have been recorded with (IPython adds a newline)."""
    first, _, body = source.partition("\n")
    if not first.lstrip().startswith("%%rlam"):
        return set()
    variants = {body, body + "\n", body.rstrip("\n") + "\n"}
    return {digest_bytes("cell", v.encode()) for v in variants}


def annotate(notebook_bytes: bytes, steps: list[StepCell]) -> tuple[bytes, list[str]]:
    """The notebook with ``metadata.rlam`` on each matched cell, and the step ids left unmatched.

    Raises ``ValueError`` when the file is not a notebook.
    """
    notebook = json.loads(notebook_bytes)
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise ValueError("not a Jupyter notebook (no 'cells' list)")
    by_id = {s.step_id: s for s in steps}
    by_cell_id: dict[str, list[StepCell]] = defaultdict(list)
    by_hash: dict[str, list[StepCell]] = defaultdict(list)
    for step in steps:
        if step.cell_id:
            by_cell_id[step.cell_id].append(step)
        if step.source_hash:
            by_hash[step.source_hash].append(step)
    matched: set[str] = set()
    for cell in notebook["cells"]:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        found: dict[str, str] = {}
        for step in by_cell_id.get(str(cell.get("id")), []):
            found.setdefault(step.step_id, "cell_id")
        for step_id in _output_step_ids(cell):
            if step_id in by_id:
                found.setdefault(step_id, "output_metadata")
        source = _source(cell.get("source", ""))
        candidates = [s for h in body_hashes(source) for s in by_hash.get(h, [])]
        count = cell.get("execution_count")
        exact = [s for s in candidates if count is not None and s.execution_count == count]
        for step in exact or candidates:
            found.setdefault(step.step_id, "source_hash")
        metadata = cell.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            continue
        metadata.pop("rlam", None)
        if found:
            ids = sorted(found)
            metadata["rlam"] = {
                "run_ids": sorted({by_id[i].run_id for i in ids}),
                "step_ids": ids,
                "matched_by": sorted(set(found.values())),
            }
            matched.update(ids)
    unmatched = sorted(set(by_id) - matched)
    meta = notebook.setdefault("metadata", {})
    if isinstance(meta, dict):
        meta["rlam"] = {
            "run_ids": sorted({s.run_id for s in steps}),
            "steps_without_cell": len(unmatched),
        }
    text = json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    return text.encode(), unmatched


def _source(source: Any) -> str:
    return "".join(source) if isinstance(source, list) else str(source)


def _output_step_ids(cell: dict[str, Any]) -> list[str]:
    ids: list[str] = []
    for rlam in _output_rlam(cell):
        if isinstance(rlam.get("step_ids"), list):
            ids.extend(str(i) for i in rlam["step_ids"])
    return ids


@dataclass(frozen=True)
class CellRuns:
    """What a notebook's cells say about runs.

    ``certain``: runs a cell's outputs say it recorded (metadata ``run_id``) or whose steps
    carry a cell's id; ``by_body``: runs whose steps match the body of a cell that says
    nothing stronger (saved without outputs) — a copy of the cell in another notebook
    matches too, so the exporter weighs them; ``shown``: runs its outputs show without
    having created them (replay, diff, a fork's parent).
    """

    certain: frozenset[str]
    by_body: frozenset[str]
    shown: frozenset[str]


def cell_runs(notebook_bytes: bytes, steps: list[StepCell]) -> CellRuns:
    """The runs the notebook's cells created or show. Raises ``ValueError`` on a non-notebook."""
    notebook = json.loads(notebook_bytes)
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise ValueError("not a Jupyter notebook (no 'cells' list)")
    by_hash: dict[str, list[StepCell]] = defaultdict(list)
    by_cell_id: dict[str, set[str]] = defaultdict(set)
    for step in steps:
        if step.source_hash:
            by_hash[step.source_hash].append(step)
        if step.cell_id:
            by_cell_id[step.cell_id].add(step.run_id)
    certain: set[str] = set()
    by_body: set[str] = set()
    shown: set[str] = set()
    for cell in notebook["cells"]:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        said: set[str] = set()
        for rlam in _output_rlam(cell):
            # without "recorded" (older outputs): a %%rlam cell's, which recorded its steps
            if isinstance(rlam.get("run_id"), str) and rlam.get("recorded", True) is not False:
                said.add(rlam["run_id"])
            if isinstance(rlam.get("run_ids"), list):
                shown.update(str(r) for r in rlam["run_ids"])
        said |= by_cell_id.get(str(cell.get("id")), set())
        certain |= said
        if said:
            continue  # the cell says where its steps went; a same body elsewhere is not it
        candidates = [
            s for h in body_hashes(_source(cell.get("source", ""))) for s in by_hash.get(h, [])
        ]
        count = cell.get("execution_count")
        exact = [s for s in candidates if count is not None and s.execution_count == count]
        by_body.update(s.run_id for s in exact or candidates)
    return CellRuns(
        frozenset(certain), frozenset(by_body - certain), frozenset(shown - certain - by_body)
    )


def _output_rlam(cell: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``rlam`` metadata of a cell's outputs (see ``trace.RunsOutput``)."""
    found = []
    for output in cell.get("outputs", []) or []:
        meta = output.get("metadata") if isinstance(output, dict) else None
        rlam = meta.get("rlam") if isinstance(meta, dict) else None
        if isinstance(rlam, dict):
            found.append(rlam)
    return found
