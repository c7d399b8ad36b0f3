"""Provenance bundles: export a notebook with its trace, verify it anywhere, import it.

``export`` writes one deterministic zip; ``verify_bundle`` checks it (hashes, graph,
environment, optionally re-execution in a fresh process); ``import_bundle`` makes
its runs browsable and forkable in another store. Its front ends: ``rlam export|verify|import``
and ``%rlam export|import`` (:mod:`rlam_jupyter.frontends`).
"""

from __future__ import annotations

from rlam_jupyter.operations.bundle.archive import Limits
from rlam_jupyter.operations.bundle.export import ExportResult, export
from rlam_jupyter.operations.bundle.importer import ImportResult, import_bundle
from rlam_jupyter.operations.bundle.problems import BundleError, Problem
from rlam_jupyter.operations.bundle.verify import VerifyReport, verify_bundle

__all__ = [
    "BundleError",
    "ExportResult",
    "ImportResult",
    "Limits",
    "Problem",
    "VerifyReport",
    "export",
    "import_bundle",
    "verify_bundle",
]
