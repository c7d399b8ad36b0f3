"""What an action's result depends on besides its inputs: its code and the code it calls.

A step may be served from the cache only if everything that can change its result is
in its cache key. Its inputs, parameters and seed are; this module adds the *code*: the
action function's source and default values, and, transitively, every function, class
and value of the user's own code that it reaches through its globals and closures
(notebook cells, the user's modules), plus the versions of the third-party packages it
calls into. It is computed when a step runs, not when the action is registered: editing
a helper in another cell must change the identity of every action that calls it.

Where the dependencies cannot be known before the code runs (``exec``/``eval``, imports
by name, rebinding globals, a global whose value cannot be hashed) the identity says
why in :attr:`ActionIdentity.uncacheable` and the engine runs the step instead of
serving it: a missed cache hit is acceptable, a wrong one never is.
"""

from __future__ import annotations

import builtins
import dis
import importlib.util
import inspect
import os
import site
import sys
import sysconfig
import textwrap
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from rlam_jupyter.hashing import canonical_json, canonicalize, digest_bytes

_DYNAMIC_BUILTINS = frozenset(
    {"exec", "eval", "compile", "__import__", "globals", "locals", "vars"}
)
"""Builtins whose use means the code that runs cannot be read from the action's code."""

_DYNAMIC_ATTRIBUTES = frozenset({("importlib", "import_module"), ("importlib", "reload")})

_OWN_PACKAGE = "rlam_jupyter"
REBUILT_PREFIX = "rlam_rebuilt_"
"""Modules rebuilt from recorded source (:mod:`rlam_jupyter.action_source`) are named so."""


@dataclass(frozen=True)
class ActionIdentity:
    """The identity of one action as it stands now, and what it was derived from."""

    name: str
    version: str
    digest: str
    user_code: tuple[Any, ...] = ()
    """The user's functions, classes and modules the action depends on (itself first)."""
    packages: Mapping[str, str] = field(default_factory=dict)
    """Top-level package → version of the third-party code it calls into."""
    values: tuple[str, ...] = ()
    """Globals read by value (``module.NAME``), hashed into the identity."""
    uncacheable: str | None = None
    """Why a step of this action must not be served from the cache (None: it may be)."""

    @property
    def version_id(self) -> str:
        """``name@version#digest``: recorded with each step as its ``action_version``."""
        return f"{self.name}@{self.version}#{self.digest[:16]}"

    def describe(self) -> list[str]:
        """One line per dependency, for the trace and for humans."""
        lines = [f"calls {_label(obj)}" for obj in self.user_code[1:]]
        lines += [f"reads {name}" for name in self.values]
        lines += [f"package {name} {version}" for name, version in sorted(self.packages.items())]
        return lines


def identify(
    name: str,
    version: str,
    func: Any,
    extra_classes: Iterable[type] = (),
) -> ActionIdentity:
    """The identity of ``func`` registered as action ``name`` version ``version``.

    ``extra_classes``: types of the step's input values; a user-defined class among them
    is walked too (its methods run inside the action without being named in its code)."""
    walk = _Walk()
    walk.function(func, root=True)
    for cls in extra_classes:
        if _is_user_module(getattr(cls, "__module__", None)):
            walk.cls(cls)
    material = {"name": name, "version": version, "tokens": sorted(walk.tokens)}
    return ActionIdentity(
        name=name,
        version=version,
        digest=digest_bytes("action-identity", canonical_json(material)),
        user_code=tuple(walk.user_code),
        packages=dict(walk.packages),
        values=tuple(sorted(walk.values)),
        uncacheable="; ".join(walk.uncacheable) or None,
    )


class _Walk:
    """One pass over the code reachable from an action, collecting identity tokens."""

    def __init__(self) -> None:
        self.tokens: set[str] = set()
        self.user_code: list[Any] = []
        self.packages: dict[str, str] = {}
        self.values: set[str] = set()
        self.uncacheable: list[str] = []
        self._seen: set[int] = set()

    def _first_visit(self, obj: Any) -> bool:
        if id(obj) in self._seen:
            return False
        self._seen.add(id(obj))
        return True

    # ------------------------------------------------------------ code

    def function(self, func: Any, root: bool = False) -> None:
        func = inspect.unwrap(func)
        if isinstance(func, (classmethod, staticmethod)):
            func = func.__func__
        if isinstance(func, types.MethodType):
            owner = func.__self__
            if not isinstance(owner, (type, types.ModuleType)):
                self.value(f"{getattr(func, '__qualname__', '?')}.__self__", owner)
            func = func.__func__
        if not isinstance(func, types.FunctionType):
            self.obj(getattr(func, "__name__", "?"), func)
            return
        if not self._first_visit(func):
            return
        module = func.__module__
        if not root and not _is_user_module(module):
            self.package(module)
            return
        self.user_code.append(func)
        label = f"{_home(module)}.{func.__qualname__}"
        self.tokens.add(f"code:{label}:{_code_digest(func.__code__)}")
        for index, default in enumerate(func.__defaults__ or ()):
            self.value(f"{label}.__defaults__[{index}]", default, token_only=True)
        for key, default in sorted((func.__kwdefaults__ or {}).items()):
            self.value(f"{label}.__kwdefaults__[{key}]", default, token_only=True)
        facts = _code_facts(func.__code__)
        for reason in facts.dynamic:
            self.uncacheable.append(f"{label} {reason}")
        scope = func.__globals__
        for global_name in facts.globals:
            if global_name in scope:
                target = scope[global_name]
            elif hasattr(builtins, global_name):
                if global_name in _DYNAMIC_BUILTINS:
                    self.uncacheable.append(
                        f"{label} calls {global_name}(): the code it runs is not known "
                        "before it runs"
                    )
                continue
            else:
                self.tokens.add(f"unbound:{label}:{global_name}")
                continue
            attributes = facts.attributes.get(global_name)
            if isinstance(target, types.ModuleType) and attributes is not None:
                self.module_attributes(label, global_name, target, attributes)
            else:
                self.obj(f"{_home(module)}.{global_name}", target)
        for cell_name, cell in zip(func.__code__.co_freevars, func.__closure__ or (), strict=False):
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell: bound later in the enclosing function
                self.uncacheable.append(
                    f"{label} closes over {cell_name!r}, which is not bound yet"
                )
                continue
            self.obj(f"{label}.<closure {cell_name}>", content)
        for imported in facts.imports:
            self.imported(imported)

    def module_attributes(
        self, label: str, global_name: str, module: types.ModuleType, attributes: Iterable[str]
    ) -> None:
        if not _is_user_module(module.__name__):
            self.package(module.__name__)
            for attribute in attributes:
                if (module.__name__.split(".")[0], attribute) in _DYNAMIC_ATTRIBUTES:
                    self.uncacheable.append(
                        f"{label} calls {global_name}.{attribute}(): it imports code by name"
                    )
            return
        for attribute in sorted(attributes):
            if hasattr(module, attribute):
                self.obj(f"{_home(module.__name__)}.{attribute}", getattr(module, attribute))
            else:
                self.tokens.add(f"unbound:{_home(module.__name__)}.{attribute}")

    def imported(self, name: str) -> None:
        """A module the code imports when it runs: the same token whether or not it is
        imported yet (a user module by its file's content, a package by its version)."""
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top == "__future__":
            return
        origin = _module_origin(name)
        if origin is not None and not _installed(origin):
            self.tokens.add(f"import:{name}:{_file_digest(origin)}")
        else:
            self.package(name)

    def module(self, module: types.ModuleType) -> None:
        """A user module used as a whole (imported inside a function, or passed around):
        every function and class it defines is a dependency."""
        if not _is_user_module(module.__name__):
            self.package(module.__name__)
            return
        if not self._first_visit(module):
            return
        self.user_code.append(module)
        for attribute, value in sorted(vars(module).items()):
            if attribute.startswith("__"):
                continue
            if getattr(value, "__module__", None) == module.__name__ and (
                isinstance(value, (types.FunctionType, type))
            ):
                self.obj(f"{_home(module.__name__)}.{attribute}", value)

    def cls(self, cls: type) -> None:
        if not self._first_visit(cls):
            return
        if not _is_user_module(cls.__module__):
            self.package(cls.__module__)
            return
        self.user_code.append(cls)
        label = f"{_home(cls.__module__)}.{cls.__qualname__}"
        self.tokens.add(f"class:{label}:" + ",".join(_label(b) for b in cls.__bases__))
        for base in cls.__bases__:
            if base is not object:
                self.cls(base)
        for attribute, member in sorted(vars(cls).items()):
            if attribute in ("__dict__", "__weakref__", "__module__", "__doc__", "__qualname__"):
                continue
            if isinstance(member, property):
                for accessor in (member.fget, member.fset, member.fdel):
                    if accessor is not None:
                        self.function(accessor)
            elif isinstance(member, (types.FunctionType, classmethod, staticmethod)):
                self.function(member)
            elif isinstance(member, type):
                self.cls(member)
            elif not callable(member):
                self.value(f"{label}.{attribute}", member, token_only=True)

    def obj(self, label: str, target: Any) -> None:
        """Anything a name in the action's code refers to."""
        if isinstance(target, types.ModuleType):
            self.module(target)
        elif isinstance(target, type):
            self.cls(target)
        elif isinstance(target, (types.FunctionType, types.MethodType, classmethod, staticmethod)):
            self.function(target)
        elif isinstance(target, (types.BuiltinFunctionType, types.BuiltinMethodType)):
            owner = getattr(target, "__module__", None) or type(getattr(target, "__self__", None)).__module__
            if owner and owner != "builtins":
                self.package(owner)
        elif callable(target) and not _is_user_module(type(target).__module__):
            # numpy ufuncs, scorers, partials: library code, configured by their state
            self.package(type(target).__module__)
            self.value(label, target)
        else:
            if _is_user_module(type(target).__module__):
                self.cls(type(target))
            self.value(label, target)

    def value(self, label: str, value: Any, token_only: bool = False) -> None:
        if isinstance(value, (types.FunctionType, type, types.ModuleType)):
            self.obj(label, value)
            return
        canonical = canonicalize(value)
        if not canonical.restorable:
            self.uncacheable.append(
                f"it reads {label}, a {type(value).__qualname__} whose value cannot be hashed"
            )
            return
        self.tokens.add(f"value:{label}:{canonical.digest}")
        if not token_only:
            self.values.add(label)

    def package(self, module_name: str | None) -> None:
        if not module_name:
            return
        top = module_name.split(".")[0]
        if top in sys.stdlib_module_names or top == "builtins" or top in self.packages:
            return
        version = _package_version(top)
        self.packages[top] = version
        self.tokens.add(f"package:{top}=={version}")


# ---------------------------------------------------------------- facts about code


@dataclass(frozen=True)
class _CodeFacts:
    globals: tuple[str, ...]
    attributes: Mapping[str, frozenset[str]]
    """Global name → the attributes read from it right away (``helpers.shift``); a global
    also used otherwise is absent here (the whole module is then a dependency)."""
    imports: tuple[str, ...]
    dynamic: tuple[str, ...]


_FACTS: dict[types.CodeType, _CodeFacts] = {}
_SOURCE_DIGESTS: dict[types.CodeType, str] = {}


def _code_facts(code: types.CodeType) -> _CodeFacts:
    """The names a code object (and the code nested in it) reads from its globals."""
    facts = _FACTS.get(code)
    if facts is not None:
        return facts
    names: list[str] = []
    attributes: dict[str, set[str]] = {}
    whole: set[str] = set()
    imports: list[str] = []
    dynamic: list[str] = []
    for nested in _nested_code(code):
        instructions = list(dis.get_instructions(nested))
        for index, instruction in enumerate(instructions):
            op = instruction.opname
            if op in ("LOAD_GLOBAL", "LOAD_NAME"):
                name = str(instruction.argval)
                names.append(name)
                following = instructions[index + 1] if index + 1 < len(instructions) else None
                if following is not None and following.opname in ("LOAD_ATTR", "LOAD_METHOD"):
                    attributes.setdefault(name, set()).add(str(following.argval))
                else:
                    whole.add(name)
            elif op in ("STORE_GLOBAL", "DELETE_GLOBAL"):
                dynamic.append(
                    f"rebinds the global {instruction.argval!r}: its result depends on "
                    "state the cache cannot see"
                )
            elif op == "IMPORT_NAME":
                imports.append(str(instruction.argval))
    facts = _CodeFacts(
        globals=tuple(dict.fromkeys(names)),
        attributes={k: frozenset(v) for k, v in attributes.items() if k not in whole},
        imports=tuple(dict.fromkeys(imports)),
        dynamic=tuple(dict.fromkeys(dynamic)),
    )
    _FACTS[code] = facts
    return facts


def _nested_code(code: types.CodeType) -> Iterable[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _nested_code(const)


def _code_digest(code: types.CodeType) -> str:
    """The function's source text (portable across Python versions); its bytecode and
    constants when no source can be found."""
    digest = _SOURCE_DIGESTS.get(code)
    if digest is None:
        try:
            text = textwrap.dedent(inspect.getsource(code)).encode()
            digest = digest_bytes("source", text)
        except (OSError, TypeError):
            digest = digest_bytes("bytecode", _code_material(code))
        _SOURCE_DIGESTS[code] = digest
    return digest


def _code_material(code: types.CodeType) -> bytes:
    consts = [
        _code_material(c) if isinstance(c, types.CodeType) else repr(c).encode()
        for c in code.co_consts
    ]
    return b"\0".join([code.co_code, repr(code.co_names).encode(), *consts])


# ---------------------------------------------------------------- whose code is it


def _home(module_name: str) -> str:
    """A module's name in identities: notebook code is ``__main__`` wherever it runs, also
    when rebuilt from its recorded source under another module name."""
    return "__main__" if module_name.startswith(REBUILT_PREFIX) else module_name


def _label(obj: Any) -> str:
    if isinstance(obj, types.ModuleType):
        return f"module {obj.__name__}"
    module = _home(str(getattr(obj, "__module__", "?")))
    return f"{module}.{getattr(obj, '__qualname__', repr(obj))}"


_USER_MODULES: dict[str, bool] = {}


def _is_user_module(module_name: str | None) -> bool:
    """True for the user's own code: notebook cells (``__main__``) and modules outside
    the standard library and installed packages (editable installs count as the user's)."""
    if not module_name:
        return False
    known = _USER_MODULES.get(module_name)
    if known is not None:
        return known
    top = module_name.split(".")[0]
    if top == "__main__" or top.startswith(REBUILT_PREFIX):
        return True
    if top in sys.stdlib_module_names or top == _OWN_PACKAGE or top in sys.builtin_module_names:
        return False
    module = sys.modules.get(module_name) or sys.modules.get(top)
    if module is None:
        return False  # not imported (yet): asked again later
    path = getattr(module, "__file__", None)
    found = not hasattr(module, "__path__") if path is None else not _installed(path)
    _USER_MODULES[module_name] = found
    return found


def is_user_module(module_name: str | None) -> bool:
    """Whether code of ``module_name`` is the user's own (see the module docstring)."""
    return _is_user_module(module_name)


def _installed(path: str) -> bool:
    real = os.path.realpath(path)
    return any(real.startswith(root) for root in _installed_roots())


def _module_origin(name: str) -> str | None:
    module = sys.modules.get(name)
    if module is not None:
        return getattr(module, "__file__", None)
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None and spec.has_location else None


def _file_digest(path: str) -> str:
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
def _package_version(top: str) -> str:
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
    return version if isinstance(version, str) else "unknown"


@lru_cache(maxsize=1)
def _distributions() -> Mapping[str, list[str]]:
    """Import name → distributions; reading it costs ~0.3 s once per process."""
    from importlib import metadata

    return metadata.packages_distributions()
