"""The provenance check: the documents a bundle carries for other tools cover its trace.

``prov.json`` has an activity for every step, ``ro-crate-metadata.json`` a
CreateAction for every step, and the notebook (if any) names only steps of the trace.
"""

from __future__ import annotations

from typing import Any

from rlam_jupyter.operations.bundle import format as fmt
from rlam_jupyter.operations.bundle.inspection import FAILED, OK, Check, Inspection
from rlam_jupyter.operations.bundle.problems import Problem


def check_documents(result: Inspection) -> None:
    """Add the provenance check (needs the trace rows)."""
    rows = result.rows
    assert rows is not None
    step_ids = sorted(rows.step_ids)
    problems = _prov_problems(result.contents.get(fmt.PROV), step_ids)
    problems += _crate_problems(result.contents.get(fmt.RO_CRATE), step_ids)
    manifest = result.manifest
    notebook = manifest.notebook if manifest else None
    cells_with_steps = 0
    if notebook:
        notebook_problems, cells_with_steps = _notebook_problems(result, notebook, rows.step_ids)
        problems += notebook_problems
    summary = f"prov.json and ro-crate-metadata.json cover all {len(step_ids)} steps" + (
        f"; {cells_with_steps} notebook cell(s) carry step ids" if notebook else "; no notebook"
    )
    result.add(
        Check(
            "provenance",
            FAILED if problems else OK,
            summary if not problems else "provenance documents incomplete",
            problems,
        )
    )


def _prov_problems(prov: Any, step_ids: list[str]) -> list[Problem]:
    if not isinstance(prov, dict):
        return [Problem(fmt.PROV, "missing or not a JSON object")]
    activities = prov.get("activity", {})
    missing = [s for s in step_ids if f"step:{s}" not in activities]
    if missing:
        return [Problem(fmt.PROV, f"{len(missing)} step(s) are not activities, e.g. {missing[0]}")]
    return []


def _crate_problems(crate: Any, step_ids: list[str]) -> list[Problem]:
    if not isinstance(crate, dict) or not isinstance(crate.get("@graph"), list):
        return [Problem(fmt.RO_CRATE, "missing or has no @graph")]
    actions = {
        e.get("@id")
        for e in crate["@graph"]
        if isinstance(e, dict) and e.get("@type") == "CreateAction"
    }
    missing = [s for s in step_ids if f"#step-{s}" not in actions]
    if missing:
        return [
            Problem(fmt.RO_CRATE, f"{len(missing)} step(s) have no CreateAction, e.g. {missing[0]}")
        ]
    return []


def _notebook_problems(
    result: Inspection, notebook: str, known: set[str]
) -> tuple[list[Problem], int]:
    """The notebook entry's problems, and how many of its cells carry step ids."""
    if not fmt.NOTEBOOK_NAME.match(notebook):
        return [Problem(notebook, "not a valid notebook entry name")], 0
    content = result.contents.get(notebook)
    if not isinstance(content, dict) or not isinstance(content.get("cells"), list):
        return [Problem(notebook, "missing or not a notebook")], 0
    problems: list[Problem] = []
    cells_with_steps = 0
    for cell in content["cells"]:
        meta = cell.get("metadata", {}) if isinstance(cell, dict) else {}
        ids = meta.get("rlam", {}).get("step_ids", []) if isinstance(meta, dict) else []
        unknown = [i for i in ids if i not in known]
        if unknown:
            problems.append(Problem(notebook, f"a cell names unknown step {unknown[0]}"))
        cells_with_steps += bool(ids)
    return problems, cells_with_steps
