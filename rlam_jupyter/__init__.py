"""rlam-jupyter: reproducible, auditable agent-driven analysis in Jupyter (R-LAM).

Agents *propose* actions; a schema check and a deterministic engine decide what
runs; every step lands in a provenance trace you can query with DuckDB.

Importing the package loads nothing else: each public name below is imported on
first use, so ``import rlam_jupyter`` (and the ``rlam`` command) start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rlam_jupyter.version import __version__

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from rlam_jupyter.actions.default_registry import registry as registry
    from rlam_jupyter.actions.proposal import Proposal as Proposal
    from rlam_jupyter.actions.registry import Input as Input
    from rlam_jupyter.actions.registry import action as action
    from rlam_jupyter.engine import Engine as Engine
    from rlam_jupyter.frontends.api import audit as audit
    from rlam_jupyter.frontends.api import diff as diff
    from rlam_jupyter.frontends.api import fork as fork
    from rlam_jupyter.frontends.api import replay as replay
    from rlam_jupyter.frontends.widget import browse as browse
    from rlam_jupyter.operations.bundle.export import export as export
    from rlam_jupyter.operations.bundle.importer import import_bundle as import_bundle
    from rlam_jupyter.operations.bundle.verify import verify_bundle as verify_bundle
    from rlam_jupyter.policy import Policy as Policy
    from rlam_jupyter.store.catalog import connect as connect
    from rlam_jupyter.store.compaction import compact as compact
    from rlam_jupyter.store.parquet import export_parquet as export_parquet
    from rlam_jupyter.values.fingerprint import fingerprint as fingerprint

_PUBLIC = {
    "action": "rlam_jupyter.actions.registry",
    "Input": "rlam_jupyter.actions.registry",
    "registry": "rlam_jupyter.actions.default_registry",
    "connect": "rlam_jupyter.store.catalog",
    "fingerprint": "rlam_jupyter.values.fingerprint",
    "replay": "rlam_jupyter.frontends.api",
    "fork": "rlam_jupyter.frontends.api",
    "diff": "rlam_jupyter.frontends.api",
    "export": "rlam_jupyter.operations.bundle",
    "verify_bundle": "rlam_jupyter.operations.bundle",
    "import_bundle": "rlam_jupyter.operations.bundle",
    "audit": "rlam_jupyter.frontends.api",
    "browse": "rlam_jupyter.frontends.widget",
    "compact": "rlam_jupyter.store.compaction",
    "export_parquet": "rlam_jupyter.store.parquet",
    "Engine": "rlam_jupyter.engine",
    "Proposal": "rlam_jupyter.actions.proposal",
    "Policy": "rlam_jupyter.policy",
}
"""Public name → the module that defines it (imported on first use)."""

__all__ = ["Input", "__version__", "action", "connect", "load_ipython_extension", "registry"]
"""What ``from rlam_jupyter import *`` binds (as in 0.2.0); the other public names are
attributes: ``rlam_jupyter.replay``, ``rlam_jupyter.fork``, ..."""


def __getattr__(name: str) -> Any:
    module_name = _PUBLIC.get(name)
    if module_name is None:
        raise AttributeError(f"module 'rlam_jupyter' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """``%load_ext rlam_jupyter``: registers ``%%rlam`` / ``%rlam``."""
    # lazy: import rlam_jupyter loads nothing (here: IPython, engine)
    from rlam_jupyter.frontends.magics import RlamMagics

    ipython.register_magics(RlamMagics)


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    """Close open runs so their journals are complete."""
    # lazy: import rlam_jupyter loads nothing (here: IPython, engine)
    from rlam_jupyter.frontends.kernel import close_session

    close_session(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where ``pip install`` put the built sidebar (JupyterLab ≥ 4 finds it there)."""
    return [{"src": "labextension", "dest": "rlam-jupyter"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The trace browser's REST API (``/rlam/api/``), loaded by ``jupyter server``/``lab``."""
    return [{"module": "rlam_jupyter.frontends.server"}]
