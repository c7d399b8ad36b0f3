"""What an action's result depends on besides its inputs: its code and the code it calls.

A step may be served from the cache only if everything that can change its result is
in its cache key. Its inputs, parameters and seed are; this module adds the *code*: the
action function's source and default values, and, transitively, every function, class
and value of the user's own code that it reaches through its globals, closures, default
values and the values it reads (a dict of helpers, a ``partial``), plus the versions of
the third-party packages it calls into and the library settings that change what they
compute (matplotlib's style, scikit-learn's config). It is computed when a step runs,
not when the action is registered: editing a helper in another cell must change the
identity of every action that calls it.

Where the dependencies cannot be known before the code runs (``exec``/``eval``, imports
by name, rebinding globals, a global whose value cannot be hashed) the identity says why in :attr:`ActionIdentity.uncacheable` and
the engine runs the step instead of serving it: a missed cache hit is acceptable, a
wrong one never is.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
import sys
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rlam_jupyter.actions.code_facts import bytecode_digest, code_facts, source_digest
from rlam_jupyter.actions.code_in_values import user_code_inside
from rlam_jupyter.actions.code_origin import (
    file_digest,
    home,
    installed,
    is_user_module,
    module_origin,
    package_version,
)
from rlam_jupyter.values.digest import digest_bytes
from rlam_jupyter.values.figures import style_settings
from rlam_jupyter.values.hashing import Canonical, canonical_json, canonicalize

_DYNAMIC_BUILTINS = frozenset(
    {"exec", "eval", "compile", "__import__", "globals", "locals", "vars"}
)
"""Builtins whose use means the code that runs cannot be read from the action's code."""

_DYNAMIC_ATTRIBUTES = frozenset({("importlib", "import_module"), ("importlib", "reload")})

_CLASS_INTERNALS = frozenset(
    {"__dict__", "__weakref__", "__module__", "__doc__", "__qualname__", "_abc_impl"}
)
"""Class attributes that are bookkeeping of the class machinery, not behaviour."""

_ENVIRONMENT_TOKENS = ("package:", "config:", "bytecode:")
"""Tokens that describe the environment (installed packages, library settings, the
interpreter's compilation) rather than the user's code."""


@dataclass(frozen=True)
class ActionIdentity:
    """The identity of one action as it stands now, and what it was derived from."""

    name: str
    version: str
    digest: str
    code_digest: str = ""
    """The digest of what the user's code is, without the environment (package versions,
    library settings): equal when an action rebuilt elsewhere is the same code."""
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
    try:
        walk.function(func, root=True)
        for cls in extra_classes:
            if is_user_module(getattr(cls, "__module__", None)):
                walk.cls(cls)
        walk.library_settings()
    except Exception as exc:  # a dependency that cannot even be looked at
        walk.uncacheable.append(f"its dependencies cannot be read ({type(exc).__name__}: {exc})")
    return walk.identity(name, version)


def identify_cell(name: str, version: str, source: str) -> ActionIdentity:
    """The identity of a ``%%rlam python`` cell: its source, and what it imports."""
    walk = _Walk()
    walk.tokens.add(f"cell:{digest_bytes('source', source.encode())}")
    try:
        code = compile(source, "<%%rlam python>", "exec", dont_inherit=True)
        for module, names in code_facts(code).imports.items():
            walk.imported(module, names)
        walk.library_settings()
    except Exception as exc:
        walk.uncacheable.append(f"its imports cannot be read ({type(exc).__name__}: {exc})")
    return walk.identity(name, version)


class _Walk:
    """One pass over the code reachable from an action, collecting identity tokens."""

    def __init__(self) -> None:
        self.tokens: set[str] = set()
        self.user_code: list[Any] = []
        self.packages: dict[str, str] = {}
        self.values: set[str] = set()
        self.uncacheable: list[str] = []
        self._seen: set[int] = set()

    def identity(self, name: str, version: str) -> ActionIdentity:
        tokens = sorted(self.tokens)
        code = [t for t in tokens if not t.startswith(_ENVIRONMENT_TOKENS)]
        return ActionIdentity(
            name=name,
            version=version,
            digest=_digest(name, version, tokens),
            code_digest=_digest(name, version, code),
            user_code=tuple(self.user_code),
            packages=dict(self.packages),
            values=tuple(sorted(self.values)),
            uncacheable="; ".join(dict.fromkeys(self.uncacheable)) or None,
        )

    def _first_visit(self, obj: Any) -> bool:
        if id(obj) in self._seen:
            return False
        self._seen.add(id(obj))
        return True

    # ------------------------------------------------------------ code

    def function(self, func: Any, root: bool = False) -> None:
        wrapped = getattr(func, "__wrapped__", None)
        if wrapped is not None and wrapped is not func:  # a decorator's wrapper, and its target
            self.obj(f"{getattr(func, '__qualname__', '?')}.__wrapped__", wrapped)
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
        if not root and not is_user_module(module):
            self.package(module)
            return
        self.user_code.append(func)
        label = f"{home(module)}.{func.__qualname__}"
        self.tokens.add(f"code:{label}:{source_digest(func.__code__)}")
        if home(module) != "__main__":
            # A module's file may have been edited since it was imported: the bytecode is
            # what runs. (A cell's source is what it ran, and IPython compiles cells with
            # flags of its own, so their bytecode would only keep rebuilt cells apart.)
            # Bytecode also differs between Python versions: it is environment, not code,
            # when an action rebuilt elsewhere is compared with its record.
            self.tokens.add(f"bytecode:{label}:{bytecode_digest(func.__code__)}")
        for index, default in enumerate(func.__defaults__ or ()):
            self.value(f"{label}.__defaults__[{index}]", default, token_only=True)
        for key, default in sorted((func.__kwdefaults__ or {}).items()):
            self.value(f"{label}.__kwdefaults__[{key}]", default, token_only=True)
        facts = code_facts(func.__code__)
        self.uncacheable.extend(f"{label} {reason}" for reason in facts.dynamic)
        self.globals_of(label, home(module), func.__globals__, facts.globals, facts.attributes)
        for cell_name, cell in zip(func.__code__.co_freevars, func.__closure__ or (), strict=False):
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell: bound later in the enclosing function
                self.uncacheable.append(f"{label} closes over {cell_name!r}, not bound yet")
                continue
            self.obj(f"{label}.<closure {cell_name}>", content)
        for imported, names in facts.imports.items():
            self.imported(imported, names)

    def globals_of(
        self,
        label: str,
        where: str,
        scope: Mapping[str, Any],
        names: Iterable[str],
        attributes: Mapping[str, frozenset[str]],
    ) -> None:
        for global_name in names:
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
            read = attributes.get(global_name)
            if isinstance(target, types.ModuleType) and read is not None:
                self.module_attributes(label, global_name, target, read)
            else:
                self.obj(f"{where}.{global_name}", target)

    def module_attributes(
        self, label: str, global_name: str, module: types.ModuleType, attributes: Iterable[str]
    ) -> None:
        if not is_user_module(module.__name__):
            self.package(module.__name__)
            for attribute in attributes:
                if (module.__name__.split(".")[0], attribute) in _DYNAMIC_ATTRIBUTES:
                    self.uncacheable.append(
                        f"{label} calls {global_name}.{attribute}(): it imports code by name"
                    )
            return
        for attribute in sorted(attributes):
            if hasattr(module, attribute):
                self.obj(f"{home(module.__name__)}.{attribute}", getattr(module, attribute))
            else:
                self.tokens.add(f"unbound:{home(module.__name__)}.{attribute}")

    def imported(self, name: str, names: Iterable[str] = ()) -> None:
        """A module the code imports when it runs (and the names it takes from it): a user
        module by the content of its files, also before it is imported, and by what it
        defines once it is; an installed package by its version."""
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top == "__future__":
            return
        origin = module_origin(name)
        if origin is None or installed(origin):
            self.package(name)
            return
        self.tokens.add(f"import:{name}:{file_digest(origin)}")
        for member in sorted(names):
            submodule = (
                module_origin(f"{name}.{member}") if origin.endswith("__init__.py") else None
            )
            if submodule is not None:
                self.tokens.add(f"import:{name}.{member}:{file_digest(submodule)}")
        for loaded in (name, *(f"{name}.{member}" for member in names)):
            module = sys.modules.get(loaded)
            if module is not None:
                self.module(module)

    def module(self, module: types.ModuleType) -> None:
        """A user module used as a whole (imported inside a function, or passed around):
        every function and class it defines is a dependency."""
        if not is_user_module(module.__name__):
            self.package(module.__name__)
            return
        if not self._first_visit(module):
            return
        self.user_code.append(module)
        path = getattr(module, "__file__", None)
        if path and not path.endswith(".py"):  # compiled (Cython, C): its file is its code
            self.tokens.add(f"binary:{home(module.__name__)}:{file_digest(path)}")
        for attribute, value in sorted(vars(module).items()):
            if attribute.startswith("__"):
                continue
            if getattr(value, "__module__", None) == module.__name__ and (
                isinstance(value, (types.FunctionType, type))
            ):
                self.obj(f"{home(module.__name__)}.{attribute}", value)

    def cls(self, cls: type) -> None:
        if not self._first_visit(cls):
            return
        if not is_user_module(cls.__module__):
            self.package(cls.__module__)
            return
        self.user_code.append(cls)
        label = f"{home(cls.__module__)}.{cls.__qualname__}"
        self.tokens.add(f"class:{label}:" + ",".join(_label(b) for b in cls.__bases__))
        for base in cls.__bases__:
            if base is not object:
                self.cls(base)
        for attribute, member in sorted(vars(cls).items()):
            if attribute in _CLASS_INTERNALS:
                continue
            if attribute == "__dataclass_fields__":
                self.dataclass_fields(label, member)
            elif isinstance(member, property):
                for accessor in (member.fget, member.fset, member.fdel):
                    if accessor is not None:
                        self.function(accessor)
            elif isinstance(member, functools.cached_property):
                self.function(member.func)
            elif isinstance(member, (types.FunctionType, classmethod, staticmethod)):
                self.function(member)
            elif isinstance(member, type):
                self.cls(member)
            elif not callable(member):
                # the class machinery's own dunders may not be hashable; they are not code
                dunder = attribute.startswith("__") and attribute.endswith("__")
                self.value(f"{label}.{attribute}", member, token_only=True, optional=dunder)

    def dataclass_fields(self, label: str, fields: Mapping[str, Any]) -> None:
        for name, spec in sorted(fields.items()):
            if spec.default is not dataclasses.MISSING:
                self.value(f"{label}.{name}=", spec.default, token_only=True)
            if spec.default_factory is not dataclasses.MISSING:
                self.obj(f"{label}.{name}()", spec.default_factory)

    def obj(self, label: str, target: Any) -> None:
        """Anything a name in the action's code refers to."""
        if isinstance(target, types.ModuleType):
            self.module(target)
        elif isinstance(target, type):
            self.cls(target)
        elif isinstance(target, (types.FunctionType, types.MethodType, classmethod, staticmethod)):
            self.function(target)
        elif isinstance(target, (types.BuiltinFunctionType, types.BuiltinMethodType)):
            owner = getattr(target, "__module__", None) or type(target.__self__).__module__
            if owner and is_user_module(owner) and owner in sys.modules:
                self.module(sys.modules[owner])  # a compiled module of the user's
            elif owner and owner != "builtins":
                self.package(owner)
        elif callable(target) and not is_user_module(type(target).__module__):
            # numpy ufuncs, scorers, partials: library code, configured by their state
            self.package(type(target).__module__)
            self.value(label, target)
        else:
            if is_user_module(type(target).__module__):
                self.cls(type(target))
            self.value(label, target)

    def value(
        self, label: str, value: Any, token_only: bool = False, optional: bool = False
    ) -> None:
        """A value the code reads: hashed by content, and the user's code inside it (a dict
        of helpers, a ``partial``, an estimator wrapping a function) walked as code, since
        a pickle names functions and classes without their code."""
        if isinstance(value, (types.FunctionType, type, types.ModuleType)):
            self.obj(label, value)
            return
        canonical: Canonical | None = None
        try:
            canonical = canonicalize(value)
            why = canonical.note
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc}"
        if canonical is None or not canonical.restorable:
            if not optional:
                self.uncacheable.append(
                    f"it reads {label}, a {type(value).__qualname__} whose value cannot be "
                    f"hashed ({why})"
                )
            return
        self.tokens.add(f"value:{label}:{canonical.digest}")
        if not token_only:
            self.values.add(label)
        for inner in user_code_inside(value):
            self.obj(f"{label}→{getattr(inner, '__qualname__', '?')}", inner)

    def package(self, module_name: str | None) -> None:
        if not module_name:
            return
        top = module_name.split(".")[0]
        if top in sys.stdlib_module_names or top == "builtins" or top in self.packages:
            return
        version = package_version(top)
        self.packages[top] = version
        self.tokens.add(f"package:{top}=={version}")

    def library_settings(self) -> None:
        """Global settings of the libraries the code calls that change what they compute."""
        if "matplotlib" in self.packages and "matplotlib" in sys.modules:
            self.tokens.add(f"config:matplotlib:{_digest('rc', '', style_settings())}")
        if "sklearn" in self.packages and "sklearn" in sys.modules:
            config = sorted((k, repr(v)) for k, v in sys.modules["sklearn"].get_config().items())
            self.tokens.add(f"config:sklearn:{_digest('config', '', config)}")


def _digest(name: str, version: str, tokens: Any) -> str:
    material = {"name": name, "version": version, "tokens": tokens}
    return digest_bytes("action-identity", canonical_json(material))


def _label(obj: Any) -> str:
    if isinstance(obj, types.ModuleType):
        return f"module {obj.__name__}"
    module = home(str(getattr(obj, "__module__", "?")))
    return f"{module}.{getattr(obj, '__qualname__', repr(obj))}"
