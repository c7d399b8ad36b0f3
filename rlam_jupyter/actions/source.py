"""The source an action was defined from, recorded with the trace so it can be rebuilt elsewhere.

A notebook's own actions live in its cells, which no other process can import. When a
step first uses an action version, the engine records where that version came from
(:func:`capture`): for an action defined in notebook cells, the definitions of those
cells (imports, functions, classes and the assignments they read; no statement that
does work) plus import lines for the names the cells took from earlier cells; for an
action in the user's own module, that module's file. :mod:`rlam_jupyter.actions.rebuild`
turns such records back into actions elsewhere.
"""

from __future__ import annotations

import ast
import builtins
import dis
import json
import linecache
import sys
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlam_jupyter.actions.code_facts import global_loads
from rlam_jupyter.actions.code_origin import REBUILT_PREFIX, home, is_user_module
from rlam_jupyter.actions.identity import ActionIdentity
from rlam_jupyter.actions.registry import ActionSpec
from rlam_jupyter.values.digest import digest_bytes
from rlam_jupyter.values.hashing import canonical_json

CELL, MODULE, PACKAGE = "cell", "module", "package"
_LITERAL_CHARS = 100_000
"""A global written back as a literal longer than this is not worth reading back."""
_CELL_FILES = ("<ipython-input-", "/ipykernel_", "\\ipykernel_", "<" + REBUILT_PREFIX)


@dataclass(frozen=True)
class ActionSource:
    """Where one action version was defined, as the trace keeps it."""

    origin: str
    """``cell`` (notebook cells), ``module`` (a file of the user's) or ``package``
    (installed code, rlam-jupyter's catalogue included: the package version is the source)."""
    module: str
    code: str | None = None
    """For ``cell``: the definitions to execute, imports first."""
    files: Mapping[str, str] = field(default_factory=dict)
    """For ``module``: path relative to the import root → file text."""
    missing: tuple[str, ...] = ()
    """What the recorded source needs but does not hold (rebuilding it would fail)."""

    def payload(self) -> dict[str, Any]:
        return {"module": self.module, "code": self.code, "files": dict(self.files)}

    @property
    def digest(self) -> str:
        return source_digest(self.origin, self.payload())


def source_digest(origin: str, payload: Mapping[str, Any]) -> str:
    """The hash a recorded source is checked against (in bundles and before rebuilding)."""
    return digest_bytes("action-source", canonical_json({"origin": origin, **payload}))


def action_record(
    run_id: str, spec: ActionSpec, identity: ActionIdentity, source: ActionSource
) -> dict[str, Any]:
    """The ``actions`` trace record of one action version used by a run."""
    return {
        "run_id": run_id,
        "action_version": identity.version_id,
        "name": spec.name,
        "version": spec.version,
        "determinism": spec.determinism,
        "origin": source.origin,
        "module": source.module,
        "source": json.dumps(source.payload()),
        "source_hash": source.digest,
        "code_digest": identity.code_digest,
        "missing": json.dumps(list(source.missing)),
        "dependencies": json.dumps(identity.describe()),
        "packages": json.dumps(dict(identity.packages)),
        "uncacheable": identity.uncacheable,
    }


# ---------------------------------------------------------------- capturing


def capture(spec: ActionSpec, identity: ActionIdentity) -> ActionSource:
    """Record where ``spec`` (at ``identity``) was defined; never raises (a source that
    cannot be captured is recorded with the reason, and the step still runs)."""
    try:
        return _capture(spec, identity)
    except Exception as exc:
        module = home(str(getattr(spec.func, "__module__", "") or ""))
        why = f"its source could not be captured ({type(exc).__name__}: {exc})"
        return ActionSource(CELL if module == "__main__" else MODULE, module, missing=(why,))


def _capture(spec: ActionSpec, identity: ActionIdentity) -> ActionSource:
    func = spec.func
    module = getattr(func, "__module__", "") or ""
    if not is_user_module(module):
        return ActionSource(PACKAGE, module)
    module = home(module)  # rebuilt code is recorded as the code it was rebuilt from
    user_code = identity.user_code or (func,)
    cell_objects = [o for o in user_code if _in_cells(o)]
    module_objects = [o for o in user_code if not _in_cells(o)]
    files: dict[str, str] = {}
    missing: list[str] = []
    for obj in module_objects:
        _module_files(obj, files, missing)
    if not cell_objects:
        return ActionSource(MODULE, module, None, files, tuple(missing))
    code, cell_missing = _CellSlicer(getattr(func, "__globals__", {})).source(cell_objects)
    return ActionSource(CELL, module, code, files, tuple(missing + cell_missing))


def _in_cells(obj: Any) -> bool:
    name = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", "")
    return home(str(name)) == "__main__"


def _module_files(obj: Any, files: dict[str, str], missing: list[str]) -> None:
    name = obj.__name__ if isinstance(obj, types.ModuleType) else obj.__module__
    # a recorded copy loaded beside the module it stands for is recorded as that module
    parts = home(name).split(".")
    for depth in range(1, len(parts) + 1):
        module = sys.modules.get(name if depth == len(parts) else ".".join(parts[:depth]))
        path = getattr(module, "__file__", None)
        if module is None or path is None:
            continue
        relative = "/".join(parts[:depth])
        relative += "/__init__.py" if Path(path).name == "__init__.py" else ".py"
        if relative in files:
            continue
        try:
            files[relative] = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            missing.append(f"the file of module {module.__name__} cannot be read ({exc})")


class _CellSlicer:
    """The definitions of the notebook cells an action depends on, in an order that runs."""

    def __init__(self, namespace: Mapping[str, Any]) -> None:
        self.namespace = namespace
        self.cells: list[str] = []
        self.preamble: dict[str, str] = {}
        self.missing: list[str] = []

    def source(self, objects: Iterable[Any]) -> tuple[str, list[str]]:
        for obj in objects:
            text = _cell_text(obj)
            if text is None:
                self.missing.append(
                    f"the cell that defines {getattr(obj, '__qualname__', obj)} is not available"
                )
                continue
            self._add_cell(text)
        body = "\n\n".join(self.cells)
        code = "\n".join(self.preamble.values()) + ("\n\n" if self.preamble else "") + body
        return code.rstrip() + "\n", self.missing

    def _add_cell(self, text: str, depth: int = 0) -> None:
        sliced = _definitions(text)
        if sliced is None or sliced in self.cells or depth > 50:
            return
        for name in _free_globals(sliced):
            self._provide(name, depth)
        self.cells.append(sliced)

    def _provide(self, name: str, depth: int) -> None:
        if name in self.preamble or hasattr(builtins, name):
            return
        if name not in self.namespace:
            self.missing.append(f"`{name}` is used but was not defined when the action ran")
            return
        value = self.namespace[name]
        line = _import_line(name, value)
        if line is not None:
            self.preamble[name] = line
            return
        if _in_cells(value) and isinstance(value, (types.FunctionType, type)):
            text = _cell_text(value)
            if text is not None:
                self._add_cell(text, depth + 1)
                return
        try:
            literal = repr(value)
            if len(literal) <= _LITERAL_CHARS and ast.literal_eval(literal) == value:
                self.preamble[name] = f"{name} = {literal}"
                return
        except Exception:  # a repr that raises or does not read back: not a literal
            pass
        self.missing.append(
            f"`{name}` (a {type(value).__qualname__}) comes from a statement that is not a "
            "definition; define it in the cell of the action or pass it as an input"
        )


def _import_line(name: str, value: Any) -> str | None:
    if isinstance(value, types.ModuleType):
        if _in_cells(value):
            return None
        module = value.__name__
        return f"import {module}" if module == name else f"import {module} as {name}"
    module_name = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if not module_name or not qualname or _in_cells(value) or "." in qualname:
        return None
    home = sys.modules.get(module_name)
    if home is None or getattr(home, qualname, None) is not value:
        return None
    alias = "" if qualname == name else f" as {name}"
    return f"from {module_name} import {qualname}{alias}"


def _cell_text(obj: Any) -> str | None:
    """The text of the cell that defines a function or class of the notebook."""
    filenames: list[str] = []
    if isinstance(obj, types.FunctionType):
        filenames.append(obj.__code__.co_filename)
    elif isinstance(obj, type):
        for member in vars(obj).values():
            func = getattr(member, "__func__", member)
            code = getattr(func, "__code__", None)
            # methods written in the class body, not ones a factory made (a NamedTuple's)
            own = str(getattr(func, "__qualname__", "")).startswith(obj.__qualname__ + ".")
            if code is not None and own and _is_cell_file(code.co_filename):
                filenames.append(code.co_filename)
    for filename in filenames:
        lines = linecache.getlines(filename)
        if lines:
            return "".join(lines)
    name = getattr(obj, "__name__", None)
    if name is None:
        return None
    # a class with no method of its own (a NamedTuple, a dataclass): the newest cell
    # that defines it at top level
    for filename, entry in reversed(list(linecache.cache.items())):
        if not _is_cell_file(filename) or len(entry) < 3:
            continue
        text = "".join(entry[2])
        if f"class {name}" in text and name in _defined_names(text):
            return text
    return None


def _is_cell_file(filename: str) -> bool:
    """Whether code of this file name was compiled from a notebook cell (or rebuilt)."""
    return any(mark in filename for mark in _CELL_FILES)


def _defined_names(text: str) -> set[str]:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return set()
    return {
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }


def _definitions(text: str) -> str | None:
    """A cell's imports, functions and classes, and the assignments they read: what it
    defines, without the statements that do work (calls, magics, loops)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    kept: list[ast.stmt] = [
        node
        for node in tree.body
        if isinstance(
            node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        )
    ]
    assignments = [n for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))]
    needed = _loaded_names(kept)
    changed = True
    while changed:
        changed = False
        for node in assignments:
            if node not in kept and _assigned_names(node) & needed:
                kept.append(node)
                needed |= _loaded_names([node])
                changed = True
    if not any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for n in kept):
        return None
    kept.sort(key=lambda n: n.lineno)
    lines = text.splitlines()
    return "\n".join("\n".join(lines[_first_line(n) - 1 : n.end_lineno]) for n in kept)


def _first_line(node: ast.stmt) -> int:
    """Where a statement starts, its decorators included."""
    decorators: list[ast.expr] = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


def _loaded_names(nodes: Iterable[ast.AST]) -> set[str]:
    return {
        n.id
        for node in nodes
        for n in ast.walk(node)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }


def _assigned_names(node: ast.Assign | ast.AnnAssign) -> set[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _free_globals(code: str) -> list[str]:
    """Names the code reads from its module's globals but does not define itself."""
    compiled = compile(code, "<rlam slice>", "exec", dont_inherit=True)
    stored = {
        str(i.argval).split(".")[0]
        for i in dis.get_instructions(compiled)
        if i.opname in ("STORE_NAME", "STORE_GLOBAL", "IMPORT_NAME")
    }
    return [n for n in dict.fromkeys(global_loads(compiled)) if n not in stored]
