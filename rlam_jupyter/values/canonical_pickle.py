"""Value-canonical pickles: bytes that depend on an object's state only, at the speed of a
normal pickle.

A normal pickle memoises objects by ``id``, so two equal models whose strings happen to be
shared differently pickle to different bytes, and a retrained model would look changed.
Turning the memo off ("fast" mode) fixes that but is about three times slower on
scikit-learn forests, because every NumPy dtype (thirteen per tree) and every class name is
then written out in full. This encoder keeps fast mode and removes those two costs in a way
that still depends on values only:

* a fixed *preamble* binds the globals that scientific pickles name over and over (numpy's
  ``dtype``, array rebuilders, ``copyreg`` helpers) to memo slots, and the body refers to
  those slots; the result is an ordinary pickle any Python reads with ``pickle.loads``;
* each dtype is written as ``pickle.loads(<its own fast pickle>)``, whose bytes are cached
  per dtype object (a dtype is immutable, so its bytes never change).

Self-referencing values, which fast mode cannot write, fall back to a normal pickle.
"""

from __future__ import annotations

import copyreg
import io
import pickle
from collections.abc import Callable
from functools import cache
from importlib import import_module
from typing import Any

PROTOCOL = 5

_SHARED_GLOBALS = (
    ("_pickle", "loads"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("copyreg", "__newobj__"),
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
)
"""Globals a pickle of arrays and estimators names hundreds of times; only those that
import here are bound (numpy 1 keeps its helpers elsewhere: they are then written in full)."""

_DTYPE_CACHE_LIMIT = 4096


def dumps(value: Any) -> bytes:
    """Pickle bytes of ``value`` that equal state always reproduces."""
    return b"".join(dump_parts(value))


def memo_free_dumps(value: Any) -> bytes:
    """A plain memo-free ("fast") pickle: value-only bytes, every object written in full
    (the encoding of kind ``pickle`` in older stores, and of each dtype here); a
    self-referencing value falls back to a normal pickle."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=PROTOCOL)
    pickler.fast = True
    try:
        pickler.dump(value)
    except (ValueError, RecursionError):
        return pickle.dumps(value, protocol=PROTOCOL)
    return buffer.getvalue()


def dump_parts(value: Any) -> list[Any]:
    """The same bytes as :func:`dumps`, as the buffers the pickler produced: frames, and
    the memory of large arrays themselves (no copy), valid while the value is unchanged."""
    preamble, memo = _preamble()
    sink = _Parts()
    pickler = pickle.Pickler(sink, protocol=PROTOCOL)
    pickler.fast = True
    pickler.memo = dict(memo)
    pickler.dispatch_table = _dispatch_table()
    try:
        pickler.dump(value)
    except (ValueError, RecursionError):
        return [pickle.dumps(value, protocol=PROTOCOL)]
    first = bytes(sink.parts[0])
    # Drop the body's PROTO header: the preamble already opened the stream.
    assert first[:2] == pickle.PROTO + bytes([PROTOCOL])
    return [preamble, first[2:], *sink.parts[1:]]


class _Parts:
    """A write-only file that keeps what it is given instead of copying it."""

    def __init__(self) -> None:
        self.parts: list[Any] = []

    def write(self, data: Any) -> int:
        if isinstance(data, pickle.PickleBuffer):
            data = data.raw()  # an array's memory as plain bytes, for hashing and writing
        self.parts.append(data)
        return memoryview(data).nbytes


@cache
def _preamble() -> tuple[bytes, dict[int, tuple[int, Any]]]:
    """The bytes that bind the shared globals to memo slots, and the memo they leave.

    The preamble pickles the tuple of globals normally (so each gets a slot), then its STOP
    is replaced by POP (same length, so the frame header stays right) to drop the tuple.
    """
    shared = tuple(_importable_globals())
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=PROTOCOL)
    pickler.dump(shared)
    memo = dict(pickler.memo.copy())
    data = buffer.getvalue()
    assert data.endswith(pickle.STOP)
    return data[:-1] + pickle.POP, memo


def _importable_globals() -> list[Any]:
    found = []
    for module_name, attribute in _SHARED_GLOBALS:
        try:
            module = import_module(module_name)
        except ImportError:
            continue
        value = getattr(module, attribute, None)
        if value is not None and value not in found:
            found.append(value)
    return found


_dtype_bytes: dict[int, tuple[Any, tuple[Callable[[bytes], Any], tuple[bytes]]]] = {}


def _reduce_dtype(dtype: Any) -> tuple[Callable[[bytes], Any], tuple[bytes]]:
    """``pickle.loads(<fast pickle of the dtype>)``; cached per dtype object, which is
    kept alive by the cache so its ``id`` cannot be reused by another dtype."""
    hit = _dtype_bytes.get(id(dtype))
    if hit is not None and hit[0] is dtype:
        return hit[1]
    reduced = (pickle.loads, (memo_free_dumps(dtype),))
    if len(_dtype_bytes) >= _DTYPE_CACHE_LIMIT:
        _dtype_bytes.clear()
    _dtype_bytes[id(dtype)] = (dtype, reduced)
    return reduced


def _dispatch_table() -> dict[type, Callable[[Any], Any]]:
    """copyreg's table plus every NumPy dtype class known right now (new dtype classes can
    be registered at any time, so the class list is checked on each call)."""
    import numpy

    return _table_for(frozenset(_subclasses(numpy.dtype)))


@cache
def _table_for(dtype_classes: frozenset[type]) -> dict[type, Callable[[Any], Any]]:
    table: dict[type, Callable[[Any], Any]] = dict(copyreg.dispatch_table)
    for dtype_class in dtype_classes:
        table[dtype_class] = _reduce_dtype
    return table


def _subclasses(base: type) -> set[type]:
    found: set[type] = {base}
    pending: list[type] = [base]
    while pending:
        children: list[type] = pending.pop().__subclasses__()
        for subclass in children:
            if subclass not in found:
                found.add(subclass)
                pending.append(subclass)
    return found
