"""Actions rebuilt from the source the trace recorded for them, in this process.

:func:`rebuild` executes recorded sources (:mod:`rlam_jupyter.actions.source`), each
into a fresh module, and collects the actions they define into a registry of their own
(the caller's registry is never touched). A source whose hash does not match, or that
names what it lacks, is never executed; a module this process already runs is never
replaced by its recorded copy, which is loaded beside it under a name of its own and
keeps the module's name in identities. A recorded module is executed once per process,
as an import is: every action of its file comes from that one module. Executing
recorded sources needs the trust that loading a bundle's pickles needs.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.util
import json
import linecache
import sys
import tempfile
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlam_jupyter.actions.code_origin import REBUILT_PREFIX, private_copy_name
from rlam_jupyter.actions.registry import ActionSpec, Registry, collecting_actions
from rlam_jupyter.actions.source import MODULE, PACKAGE, source_digest


@dataclass(frozen=True)
class RecordedSource:
    """One ``actions`` row, as :func:`rebuild` reads it."""

    action_version: str
    name: str
    origin: str
    module: str
    payload: Mapping[str, Any]
    source_hash: str
    missing: tuple[str, ...]
    packages: Mapping[str, str] = field(default_factory=dict)
    code_digest: str = ""
    """The recorded identity without the environment (see ``ActionIdentity.code_digest``)."""
    """Package versions the action called into when it was recorded."""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RecordedSource:
        def decoded(key: str, default: Any) -> Any:
            try:
                return json.loads(row.get(key) or "null") or default
            except ValueError:
                return default

        return cls(
            str(row["action_version"]),
            str(row["name"]),
            str(row.get("origin") or PACKAGE),
            str(row.get("module") or ""),
            decoded("source", {}),
            str(row.get("source_hash") or ""),
            tuple(decoded("missing", [])),
            dict(decoded("packages", {})),
            str(row.get("code_digest") or ""),
        )


@dataclass
class Rebuilt:
    """Actions rebuilt from recorded sources, and why the others could not be."""

    registry: Registry = field(default_factory=Registry)
    by_version: dict[str, ActionSpec] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    sources: dict[str, RecordedSource] = field(default_factory=dict)


_REBUILT_ROOT: list[Path] = []
_MODULES: dict[str, tuple[types.ModuleType, Registry]] = {}
"""Recorded modules loaded by a rebuild, by source hash, with the actions they define."""


def rebuild(sources: Iterable[RecordedSource]) -> Rebuilt:
    """Execute recorded sources in this process, each into a fresh module, collecting the
    actions they define; a source that fails its hash check is never executed."""
    result = Rebuilt()
    for source in sources:
        if source.origin == PACKAGE:
            continue
        if source_digest(source.origin, source.payload) != source.source_hash:
            result.problems[source.action_version] = (
                "its recorded source does not match its hash (the record is damaged or was "
                "edited); not executed"
            )
            continue
        if source.missing:
            result.problems[source.action_version] = (
                "its recorded source is not enough to rebuild it: " + "; ".join(source.missing)
            )
            continue
        try:
            collected = _collect(source)
        except Exception as exc:
            result.problems[source.action_version] = (
                f"rebuilding it from its recorded source failed: {type(exc).__name__}: {exc}"
            )
            continue
        spec = collected.get(source.name)
        if spec is None:
            result.problems[source.action_version] = (
                f"its recorded source does not define an action named {source.name!r}"
            )
            continue
        for rebuilt in collected.values():
            result.registry.add(rebuilt)
        result.by_version[source.action_version] = spec
        result.sources[source.action_version] = source
    return result


def _collect(source: RecordedSource) -> Registry:
    """The actions a recorded source defines. A recorded module loaded by an earlier
    rebuild (for another action of its file) is not executed again: a second copy would
    define classes of its own, which its values would not be instances of."""
    known = _MODULES.get(source.source_hash)
    if known is not None and sys.modules.get(known[0].__name__) is known[0]:
        return known[1]
    collected = Registry()
    with collecting_actions(collected):
        module = _execute(source)
    if module is not None:
        _MODULES[source.source_hash] = (module, collected)
    return collected


def _execute(source: RecordedSource) -> types.ModuleType | None:
    """Execute a recorded source; a recorded module is returned, cells are not (each
    version of a notebook's actions is rebuilt from its own cells)."""
    files = source.payload.get("files") or {}
    if files:
        root = _files_root(source.source_hash)
        for relative, text in files.items():
            target = (root / relative).resolve()
            if not target.is_relative_to(root.resolve()):
                raise ValueError(f"unsafe path {relative!r} in the recorded source")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        # imports find the recorded files of modules this process has not loaded; a
        # module it runs already is never shadowed (see below)
        if any(_module_of(p) not in sys.modules for p in files) and str(root) not in sys.path:
            sys.path.insert(0, str(root))
    if source.origin == MODULE:
        if not files or source.module == "__main__":
            raise ImportError(f"no file of module {source.module!r} was recorded")
        if source.module in sys.modules:
            # the process runs that module already (perhaps edited since): load the
            # recorded file beside it, under a name of its own, never in its place
            relative = next(p for p in files if _module_of(p) == source.module)
            return _load_private(source, root / relative)
        importlib.invalidate_caches()
        return importlib.import_module(source.module)
    code = str(source.payload.get("code") or "")
    name = f"{REBUILT_PREFIX}{source.source_hash[:12]}"
    filename = f"<{name}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    module = types.ModuleType(name)
    module.__dict__["__builtins__"] = builtins
    sys.modules[name] = module
    # dont_inherit: the cells' code runs as they were written, not with this module's
    # __future__ imports (postponed annotations would turn their types into strings)
    exec(compile(code, filename, "exec", dont_inherit=True), module.__dict__)
    return None


def _module_of(relative: str) -> str:
    parts = relative.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _load_private(source: RecordedSource, path: Path) -> types.ModuleType:
    name = private_copy_name(source.module, source.source_hash)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the recorded file {path.name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _files_root(source_hash: str) -> Path:
    if not _REBUILT_ROOT:
        _REBUILT_ROOT.append(Path(tempfile.mkdtemp(prefix="rlam-rebuilt-")))
    return _REBUILT_ROOT[0] / source_hash[:12]
