"""Open a bundle and check what can be checked without running anything.

One pass over the zip: the directory is checked for hostile entries, then every
entry is hashed against the manifest, object entries against the hash in their
name, trace tables against the trace schema, and finally the provenance graph for
completeness. ``verify`` reports these checks; ``import`` refuses a bundle unless
all of them hold, and reuses what was read (tables) instead of reading it twice.
Each concern has its checker (``check_*`` beside this module); this one runs them
in order, each only when what it needs was read.
"""

from __future__ import annotations

from pathlib import Path

from rlam_jupyter.operations.bundle.archive import DEFAULT_LIMITS, Limits, SafeArchive
from rlam_jupyter.operations.bundle.check_documents import check_documents
from rlam_jupyter.operations.bundle.check_graph import check_graph
from rlam_jupyter.operations.bundle.check_manifest import check_manifest
from rlam_jupyter.operations.bundle.check_references import check_objects_referenced
from rlam_jupyter.operations.bundle.check_trace import check_trace
from rlam_jupyter.operations.bundle.inspection import FAILED, OK, Check, Inspection
from rlam_jupyter.operations.bundle.problems import BundleError


def inspect_bundle(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> Inspection:
    """Run the static checks; the result is never None, its ``ok`` says whether all held."""
    result = Inspection(Path(path))
    try:
        result.archive = SafeArchive(result.path, limits)
    except BundleError as exc:
        result.add(Check("archive", FAILED, "unsafe or unreadable zip", exc.problems))
        return result
    names = result.archive.names()
    result.add(Check("archive", OK, f"{len(names)} entries, no unsafe names, links or bombs"))
    if not check_manifest(result):
        return result
    check_trace(result)
    if result.rows is not None:
        check_objects_referenced(result)
        check_graph(result)
        check_documents(result)
    return result
