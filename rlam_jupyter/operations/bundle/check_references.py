"""The objects check: every object an artifact of the trace refers to is in the bundle.

A bundle exported without objects (``--no-objects``) skips this check and says so:
its outputs can be checked by hash, not by bytes.
"""

from __future__ import annotations

from rlam_jupyter.operations.bundle.inspection import FAILED, OK, SKIPPED, Check, Inspection
from rlam_jupyter.operations.bundle.problems import Problem


def check_objects_referenced(result: Inspection) -> None:
    """Add the objects check (needs the trace rows and the manifest)."""
    rows, manifest = result.rows, result.manifest
    assert rows is not None
    assert manifest is not None
    if not manifest.objects_included:
        result.add(
            Check(
                "objects",
                SKIPPED,
                "exported without objects (--no-objects): output bytes cannot be checked",
            )
        )
        return
    problems = []
    present = set(result.objects)
    in_manifest = set(manifest.files)
    needed = 0
    for artifact_id, art in sorted(rows.artifacts.items()):
        path = art.get("object_path")
        if not path:
            continue
        needed += 1
        if path in present:
            continue
        if path in in_manifest:
            continue  # listed but failed the byte checks: already reported under the manifest
        problems.append(
            Problem(
                path,
                f"missing: the object of artifact {art.get('name')!r} "
                f"({artifact_id[:12]}, step {art.get('step_id')}) is not in the bundle",
            )
        )
    status = FAILED if problems else OK
    summary = (
        f"{needed} referenced objects present"
        if not problems
        else (f"{len(problems)} referenced object(s) missing")
    )
    result.add(Check("objects", status, summary, problems))
