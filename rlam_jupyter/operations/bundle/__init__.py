"""Provenance bundles: export a notebook with its trace, verify it anywhere, import it.

``export`` writes one deterministic zip; ``verify_bundle`` checks it (hashes, graph,
environment, optionally re-execution in a fresh process); ``import_bundle`` makes
its runs browsable and forkable in another store. ``rlam export|verify|import``
(``register_cli``) and ``%rlam export|import`` are registered from here.
"""

from __future__ import annotations

import sys

from rlam_jupyter.operations.bundle.archive import Limits
from rlam_jupyter.operations.bundle.commands import register_cli, register_magics
from rlam_jupyter.operations.bundle.export import ExportResult, export
from rlam_jupyter.operations.bundle.importer import ImportResult, import_bundle
from rlam_jupyter.operations.bundle.problems import BundleError, Problem
from rlam_jupyter.operations.bundle.verify import VerifyReport, verify_bundle

if "IPython" in sys.modules:
    # In a kernel (IPython is loaded before anything of ours) the notebook commands are
    # registered on import, whether %load_ext came first or not; the CLI skips IPython.
    register_magics()

__all__ = [
    "BundleError",
    "ExportResult",
    "ImportResult",
    "Limits",
    "Problem",
    "VerifyReport",
    "export",
    "import_bundle",
    "register_cli",
    "verify_bundle",
]
