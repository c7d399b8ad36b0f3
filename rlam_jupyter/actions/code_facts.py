"""What a code object reads, imports and does, read from its bytecode once and remembered.

The identity walk (:mod:`rlam_jupyter.actions.identity`) asks, for every function it
reaches, which globals it reads (and which attributes of them), which modules it imports
when it runs, whether it does something that makes its dependencies unknowable (rebinding
a global), what its source is and what its bytecode is. Code objects do not change, so
each answer is computed once per code object.
"""

from __future__ import annotations

import dis
import inspect
import textwrap
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from rlam_jupyter.values.digest import digest_bytes


@dataclass(frozen=True)
class CodeFacts:
    """What one code object (and the code nested in it) depends on."""

    globals: tuple[str, ...]
    attributes: Mapping[str, frozenset[str]]
    """Global name → the attributes read from it right away (``helpers.shift``); a global
    also used otherwise is absent here (the whole module is then a dependency)."""
    imports: Mapping[str, frozenset[str]]
    """Module imported when the code runs → the names taken from it (``from m import a``)."""
    dynamic: tuple[str, ...]
    """Why the code's dependencies cannot be read from it, if they cannot."""


_FACTS: dict[types.CodeType, CodeFacts] = {}
_SOURCES: dict[types.CodeType, str] = {}
_BYTECODES: dict[types.CodeType, str] = {}


def code_facts(code: types.CodeType) -> CodeFacts:
    """The globals, attributes and imports a code object reads (memoised per code object)."""
    facts = _FACTS.get(code)
    if facts is not None:
        return facts
    names: list[str] = []
    attributes: dict[str, set[str]] = {}
    whole: set[str] = set()
    imports: dict[str, set[str]] = {}
    dynamic: list[str] = []
    for nested in nested_code(code):
        instructions = list(dis.get_instructions(nested))
        importing: str | None = None
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
                importing = str(instruction.argval)
                imports.setdefault(importing, set())
            elif op == "IMPORT_FROM" and importing is not None:
                imports[importing].add(str(instruction.argval))
    facts = CodeFacts(
        globals=tuple(dict.fromkeys(names)),
        attributes={k: frozenset(v) for k, v in attributes.items() if k not in whole},
        imports={k: frozenset(v) for k, v in imports.items()},
        dynamic=tuple(dict.fromkeys(dynamic)),
    )
    _FACTS[code] = facts
    return facts


def nested_code(code: types.CodeType) -> Iterator[types.CodeType]:
    """A code object and every code object nested in it (functions, comprehensions)."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from nested_code(const)


def global_loads(code: types.CodeType) -> Iterator[str]:
    """Every name the code (nested code included) looks up in its globals."""
    for nested in nested_code(code):
        for instruction in dis.get_instructions(nested):
            if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                yield str(instruction.argval)


def source_digest(code: types.CodeType) -> str:
    """The function's source text: what it *is*, the same on every machine (its bytecode
    and constants when no source can be found)."""
    known = _SOURCES.get(code)
    if known is None:
        try:
            text = textwrap.dedent(inspect.getsource(code))
            known = digest_bytes("source", text.encode())
        except Exception:  # no source (exec, a lost file) or one inspect cannot parse
            known = bytecode_digest(code)
        _SOURCES[code] = known
    return known


def bytecode_digest(code: types.CodeType) -> str:
    """The code that is running: unlike the source on disk, it cannot have been edited
    since the module was imported (so a result of old code never gets the new code's key)."""
    known = _BYTECODES.get(code)
    if known is None:
        known = digest_bytes("bytecode", _code_material(code))
        _BYTECODES[code] = known
    return known


def _code_material(code: types.CodeType) -> bytes:
    consts = [
        _code_material(c) if isinstance(c, types.CodeType) else repr(c).encode()
        for c in code.co_consts
    ]
    return b"\0".join([code.co_code, repr(code.co_names).encode(), *consts])
