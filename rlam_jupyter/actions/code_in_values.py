"""Which of the user's functions and classes a value holds.

A pickle saves a function or a class by its name only, so the content hash of a value
that holds one (a dict of helpers, a ``functools.partial``, an estimator wrapping a
function) does not change when that code is edited. The identity walk asks this module
for the code inside such values and hashes it as code.
"""

from __future__ import annotations

import contextlib
import pickle
import types
from typing import Any

from rlam_jupyter.actions.code_origin import is_user_module

_PLAIN_TYPES = (int, float, complex, str, bytes, bool, type(None))


class _Collector(pickle.Pickler):
    """A pickler that writes nowhere and notes the user's functions, classes and
    modules a value holds (pickle would save them by name only)."""

    def __init__(self) -> None:
        super().__init__(_Discard(), protocol=pickle.HIGHEST_PROTOCOL)
        self.found: list[Any] = []

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, (types.FunctionType, type, types.ModuleType)):
            module = obj.__name__ if isinstance(obj, types.ModuleType) else obj.__module__
            if is_user_module(module):
                self.found.append(obj)
                return len(self.found)
        return None


class _Discard:
    def write(self, data: Any) -> int:
        return len(data)


def user_code_inside(value: Any) -> list[Any]:
    """The user's functions, classes and modules that ``value`` holds, found by pickling it
    to nowhere (arrays and frames of plain dtypes are skipped: they hold no code)."""
    if isinstance(value, _PLAIN_TYPES) or _is_numeric_data(value):
        return []
    collector = _Collector()
    with contextlib.suppress(Exception):  # what cannot be pickled, canonicalize judged
        collector.dump(value)
    return collector.found


def _is_numeric_data(value: Any) -> bool:
    """Arrays and frames of plain dtypes hold no code: skip the second pass over them."""
    module = type(value).__module__.split(".")[0]
    if module == "numpy":
        return getattr(getattr(value, "dtype", None), "hasobject", True) is False
    if module == "pandas":
        dtypes = getattr(value, "dtypes", None)
        if dtypes is None:
            dtypes = [getattr(value, "dtype", None)]
        return all(getattr(d, "hasobject", True) is False for d in list(dtypes))
    return False
