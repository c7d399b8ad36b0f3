"""Whose code is it: the user's own (hashed by content) or an installed package (by version).

An action's identity follows the user's code (notebook cells, their own modules, editable
installs) into its source, and stops at installed code, which it records by the
version of the distribution that provides it. This module draws that line and reads the
versions, the same way whether a module is imported yet or not.
"""

from __future__ import annotations

import importlib.util
import os
import site
import sys
import sysconfig
from collections.abc import Mapping
from functools import lru_cache

from rlam_jupyter.actions.former_names import FORMER_MODULE_NAMES
from rlam_jupyter.values.digest import digest_bytes

OWN_PACKAGE = "rlam_jupyter"
REBUILT_PREFIX = "rlam_rebuilt_"
"""Modules rebuilt from recorded source (:mod:`rlam_jupyter.actions.source`) are named so."""

_USER_MODULES: dict[str, bool] = {}
_PRIVATE_COPIES: dict[str, str] = {}
"""Name of a recorded module's copy loaded beside the module itself → the module's name."""


def is_user_module(module_name: str | None) -> bool:
    """True for the user's own code: notebook cells (``__main__``) and modules outside
    the standard library and installed packages (editable installs count as the user's).
    rlam-jupyter's own catalogue counts as installed: its version is its identity."""
    if not module_name:
        return False
    known = _USER_MODULES.get(module_name)
    if known is not None:
        return known
    top = module_name.split(".")[0]
    if top == "__main__" or top.startswith(REBUILT_PREFIX):
        return True
    if top in sys.stdlib_module_names or top == OWN_PACKAGE or top in sys.builtin_module_names:
        return False
    module = sys.modules.get(module_name) or sys.modules.get(top)
    if module is None:
        return False  # not imported (yet): asked again later
    path = getattr(module, "__file__", None)
    found = not hasattr(module, "__path__") if path is None else not installed(path)
    _USER_MODULES[module_name] = found
    return found


def private_copy_name(module_name: str, source_hash: str) -> str:
    """The name a recorded copy of ``module_name`` is loaded under when the process runs
    a module of that name already; :func:`home` gives it back ``module_name``."""
    name = f"{REBUILT_PREFIX}{source_hash[:12]}_{module_name.replace('.', '_')}"
    _PRIVATE_COPIES[name] = module_name
    return name


def home(module_name: str) -> str:
    """A module's name in identities: notebook code is ``__main__`` wherever it runs, also
    when rebuilt from its recorded source under another module name; a recorded module
    loaded beside the one the process runs keeps its own name (:func:`private_copy_name`);
    a module of this package that moved keeps its former name (:data:`FORMER_MODULE_NAMES`)."""
    if module_name.startswith(REBUILT_PREFIX):
        return _PRIVATE_COPIES.get(module_name, "__main__")
    return FORMER_MODULE_NAMES.get(module_name, module_name)


def installed(path: str) -> bool:
    """Whether a file belongs to the interpreter's standard library or site-packages."""
    real = os.path.realpath(path)
    return any(real.startswith(root) for root in _installed_roots())


def module_origin(name: str) -> str | None:
    """The file a module is (or would be) loaded from, without importing it."""
    module = sys.modules.get(name)
    if module is not None:
        return getattr(module, "__file__", None)
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None and spec.has_location else None


def file_digest(path: str) -> str:
    """The content hash of a file, or ``unreadable``."""
    try:
        with open(path, "rb") as handle:
            return digest_bytes("file", handle.read())
    except OSError:
        return "unreadable"


@lru_cache(maxsize=1)
def _installed_roots() -> tuple[str, ...]:
    roots = set(site.getsitepackages()) | {site.getusersitepackages()}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        roots.add(sysconfig.get_paths()[key])
    return tuple(os.path.realpath(r) + os.sep for r in roots if r)


@lru_cache(maxsize=1024)
def package_version(top: str) -> str:
    """The installed version of the distribution that provides ``top``: from its metadata
    whether or not it is imported yet, so the identity does not depend on import order."""
    from importlib import metadata

    try:
        return metadata.version(top)
    except metadata.PackageNotFoundError:
        pass
    for distribution in _distributions().get(top, []):  # import name ≠ name (sklearn)
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    module = sys.modules.get(top)
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    # no metadata and no version: the content of its top file is the best evidence left
    origin = module_origin(top)
    return f"file {file_digest(origin)[:16]}" if origin else "unknown"


@lru_cache(maxsize=1)
def _distributions() -> Mapping[str, list[str]]:
    """Import name → distributions; reading it costs ~0.3 s once per process."""
    from importlib import metadata

    return metadata.packages_distributions()
