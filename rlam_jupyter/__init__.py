"""rlam-jupyter: reproducible, auditable agent-driven analysis in Jupyter (R-LAM).

Agents *propose* actions; a schema check and a deterministic engine decide what
runs; every step lands in a provenance trace you can query with DuckDB.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from rlam_jupyter.actions.registry import Input, action, registry
from rlam_jupyter.store.catalog import connect

__version__ = "0.2.0"

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = ["Input", "__version__", "action", "connect", "load_ipython_extension", "registry"]


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """``%load_ext rlam_jupyter``: registers ``%%rlam`` / ``%rlam`` (imports lazily)."""
    from rlam_jupyter.frontends.magics import RlamMagics

    ipython.register_magics(RlamMagics)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where ``pip install`` put the built sidebar (JupyterLab ≥ 4 finds it there)."""
    return [{"src": "labextension", "dest": "rlam-jupyter"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The trace browser's REST API (``/rlam/api/``), loaded by ``jupyter server``/``lab``."""
    return [{"module": "rlam_jupyter.frontends.server"}]


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    """Close open runs so their journals are complete."""
    from rlam_jupyter.frontends.magics import close_session

    close_session(ipython)


_LAZY = {
    "fingerprint": "rlam_jupyter.values.fingerprint",
    "replay": "rlam_jupyter.operations.replay",
    "fork": "rlam_jupyter.operations.replay",
    "diff": "rlam_jupyter.operations.replay",
    "export": "rlam_jupyter.operations.bundle",
    "verify_bundle": "rlam_jupyter.operations.bundle",
    "import_bundle": "rlam_jupyter.operations.bundle",
    "audit": "rlam_jupyter.operations.audit",
    "browse": "rlam_jupyter.frontends.widget",
    "compact": "rlam_jupyter.store.compaction",
    "export_parquet": "rlam_jupyter.store.parquet",
    "Engine": "rlam_jupyter.engine",
    "Proposal": "rlam_jupyter.actions.proposal",
    "Policy": "rlam_jupyter.policy",
}
"""Public names imported on first use, so ``import rlam_jupyter`` stays cheap."""


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'rlam_jupyter' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)


class _Package(types.ModuleType):
    """Keeps ``rlam_jupyter.operations.replay`` (and ``fingerprint``, ``audit``) the public *function*
    once the submodule of the same name is imported: the import system sets the
    submodule as a package attribute, which would shadow the function. Import the
    modules with ``from rlam_jupyter.operations.replay import ...`` or ``importlib``."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name) == f"{__name__}.{name}":
            value = getattr(value, name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
for _name in [n for n, v in globals().items() if isinstance(v, types.ModuleType) and n in _LAZY]:
    del globals()[_name]  # imported before the class switch: fall back to __getattr__
