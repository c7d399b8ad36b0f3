"""Canonical bytes and content hashes of values: what makes "identical outputs" checkable.

Every value gets a *kind* and canonical bytes; its hash is blake3 over the kind and
those bytes, so equal content gives equal hashes across processes and machines:
DataFrames through Arrow IPC (schema metadata stripped, so the pandas version does
not leak into the hash), NumPy arrays through the ``.npy`` format, plain JSON values
through sorted, compact JSON, matplotlib figures and axes through a deterministic
rendering (kind ``figure``, see :mod:`rlam_jupyter.values.figures`: their pickle differs in every
process), and everything else (estimators, models) through a value-canonical pickle
(kind ``pickle2``, see :mod:`rlam_jupyter.values.canonical_pickle`).

Older stores hold kind ``pickle`` (a slower memo-free pickle); those
objects still restore and verify, and :func:`digest_as` re-hashes a value the way its
recorded kind was hashed, so replaying an old run does not report a false divergence.
"""

from __future__ import annotations

import io
import json
import math
import pickle
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import blake3

from rlam_jupyter.values import canonical_pickle, figures
from rlam_jupyter.values.digest import FIGURE_KIND, digest_bytes, digest_parts

HEX_LEN = 64


@dataclass(frozen=True)
class Canonical:
    """A value's canonical form: the concatenated ``parts`` are what the object store keeps.

    The parts of a pickle reference the value's own array memory (no copy of a large
    model is made), so a Canonical is used while the step that made it is being recorded
    and dropped then; :attr:`payload` joins them when whole bytes are needed."""

    kind: str
    digest: str
    parts: tuple[Any, ...]
    restorable: bool
    note: str = ""

    @property
    def extension(self) -> str:
        return _EXTENSIONS.get(self.kind, ".bin")

    @cached_property
    def payload(self) -> bytes:
        if len(self.parts) == 1 and type(self.parts[0]) is bytes:
            return self.parts[0]
        return b"".join(self.parts)

    @cached_property
    def size(self) -> int:
        return sum(memoryview(part).nbytes for part in self.parts)


def _whole(kind: str, data: bytes, digest: str | None = None) -> Canonical:
    return Canonical(kind, digest or digest_bytes(kind, data), (data,), True)


_EXTENSIONS = {
    "json": ".json",
    "ndarray": ".npy",
    "table": ".arrows",
    "pickle": ".pkl",
    "pickle2": ".pkl",
    "figure": ".figure",
}
PICKLE_KIND = "pickle2"
LEGACY_PICKLE_KIND = "pickle"
PICKLE_KINDS = (LEGACY_PICKLE_KIND, PICKLE_KIND)
_FIGURE_MODULES = ("matplotlib", "mpl_toolkits")


def hash_file(path: Path) -> str:
    """Streaming blake3 of a file's bytes (for notebooks, bundles, data files)."""
    hasher = blake3.blake3()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def canonical_json(value: Any) -> bytes:
    """Sorted, compact JSON; raises ``TypeError`` for anything that is not plain JSON."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _is_plain_json(value: Any, depth: int = 0) -> bool:
    if depth > 64:
        return False
    if value is None or isinstance(value, (bool, str)):
        return True
    if isinstance(value, int):
        return type(value) is int
    if isinstance(value, float):
        return type(value) is float and math.isfinite(value)
    if type(value) is list:
        return all(_is_plain_json(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _is_plain_json(v, depth + 1) for k, v in value.items())
    return False


def canonicalize(value: Any) -> Canonical:
    """Classify ``value`` and produce its canonical bytes and hash."""
    if _is_plain_json(value):
        data = canonical_json(value)
        return _whole("json", data)
    module = type(value).__module__.split(".")[0]
    if module == "numpy":
        numpy_form = _numpy(value)
        if numpy_form is not None:
            return numpy_form
    if module == "pandas":
        table_form = _pandas(value)
        if table_form is not None:
            return table_form
    if module == "pyarrow":
        table_form = _arrow(value)
        if table_form is not None:
            return table_form
    if module in _FIGURE_MODULES:
        figure_form = _figure(value)
        if figure_form is not None:
            return figure_form
    try:
        parts = canonical_pickle.dump_parts(value)
    except Exception as exc:
        text = f"{type(value).__module__}.{type(value).__qualname__}:{value!r}".encode()
        note = (
            f"{type(value).__qualname__} cannot be serialised ({type(exc).__name__}: {exc}); "
            "it is recorded by a hash of its type and repr and cannot be restored on replay"
        )
        return Canonical("opaque", digest_bytes("opaque", text), (), False, note)
    return Canonical(PICKLE_KIND, digest_parts(PICKLE_KIND, parts), tuple(parts), True)


def digest_as(value: Any, kind: str) -> str:
    """The hash of ``value`` as an artifact of the recorded ``kind`` was hashed: the same
    as :func:`hash_value` except for objects recorded by the older pickle encoding (a
    memo-free pickle, three times slower on forests than ``pickle2``)."""
    if kind == LEGACY_PICKLE_KIND:
        try:
            return digest_bytes(kind, canonical_pickle.memo_free_dumps(value))
        except Exception:
            return hash_value(value)
    if (
        kind == FIGURE_KIND
        and type(value).__module__.split(".")[0] in _FIGURE_MODULES
        and figures.is_figure_like(value)
    ):
        return figures.figure_digest(value)  # rendering only: no pickle round trip
    return hash_value(value)


def _figure(value: Any) -> Canonical | None:
    if not figures.is_figure_like(value):
        return None
    digest, payload, note = figures.canonical_parts(value)
    return Canonical(FIGURE_KIND, digest, (payload,) if payload else (), not note, note)


def _numpy(value: Any) -> Canonical | None:
    import numpy as np

    if isinstance(value, np.generic):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray) or value.dtype.hasobject:
        return None
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(value), allow_pickle=False)
    data = buffer.getvalue()
    return _whole("ndarray", data)


def _pandas(value: Any) -> Canonical | None:
    import pandas as pd
    import pyarrow as pa

    if not isinstance(value, (pd.DataFrame, pd.Series)):
        return None
    frame = value.to_frame() if isinstance(value, pd.Series) else value
    try:
        table = pa.Table.from_pandas(frame, preserve_index=True)
    except (pa.ArrowException, TypeError, ValueError):
        return None
    kind = "series" if isinstance(value, pd.Series) else "table"
    stripped = table.replace_schema_metadata(None)
    digest = digest_bytes(kind, _ipc_bytes(stripped))
    return _whole(kind, _ipc_bytes(table), digest)


def _arrow(value: Any) -> Canonical | None:
    import pyarrow as pa

    if not isinstance(value, pa.Table):
        return None
    digest = digest_bytes("arrow", _ipc_bytes(value.replace_schema_metadata(None)))
    return _whole("arrow", _ipc_bytes(value), digest)


def _ipc_bytes(table: Any) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks())
    return bytes(sink.getvalue().to_pybytes())


def restore(kind: str, payload: bytes) -> Any:
    """Rebuild a fresh value from an object-store payload (inverse of ``canonicalize``)."""
    if kind == "json":
        return json.loads(payload)
    if kind == "ndarray":
        import numpy as np

        return np.load(io.BytesIO(payload), allow_pickle=False)
    if kind in ("table", "series", "arrow"):
        import pyarrow as pa

        table = pa.ipc.open_stream(payload).read_all()
        if kind == "arrow":
            return table
        frame = table.to_pandas()
        if kind == "series":
            return frame.iloc[:, 0]
        return frame
    if kind in PICKLE_KINDS:
        return pickle.loads(payload)
    if kind == FIGURE_KIND:
        return figures.restore_figure(payload)
    raise ValueError(f"objects of kind {kind!r} cannot be restored")


def hash_value(value: Any) -> str:
    """The content hash of any value (see :func:`canonicalize`)."""
    return canonicalize(value).digest


_QUICK_DTYPE_KINDS = frozenset("biufcmM")
"""NumPy dtype kinds whose bytes are the whole value: bool, ints, floats, complex, times."""


def quick_fingerprint(value: Any) -> str | None:
    """A cheap digest of a DataFrame or Series that changes whenever anything its canonical
    hash depends on changes (type, labels, dtypes, index, values); ``None`` for values it
    cannot vouch for (object/extension dtypes, MultiIndex, subclasses, other types).

    It never stands in for the canonical hash in the trace: the engine uses it to tell
    that a bound input is still exactly the recorded value without re-encoding it
    through Arrow (which costs milliseconds per use).
    """
    if type(value).__module__.split(".")[0] != "pandas":
        return None
    import numpy as np
    import pandas as pd

    if type(value) is pd.Series:
        dtypes = [value.dtype]
        labels: Any = ("series", repr(value.name))
    elif type(value) is pd.DataFrame:
        dtypes = list(value.dtypes)
        columns = value.columns
        if type(columns) not in (pd.Index, pd.RangeIndex):
            return None
        labels = ("frame", repr(columns.tolist()), str(columns.dtype), repr(columns.name))
    else:
        return None
    if not all(isinstance(d, np.dtype) and d.kind in _QUICK_DTYPE_KINDS for d in dtypes):
        return None
    index = value.index
    dtype_codes = [d.str for d in dtypes if isinstance(d, np.dtype)]
    hasher = blake3.blake3(repr((labels, dtype_codes, repr(index.name))).encode())
    if type(index) is pd.RangeIndex:
        hasher.update(repr(("range", index.start, index.stop, index.step)).encode())
    elif type(index) is pd.Index and isinstance(index.dtype, np.dtype):
        if index.dtype.kind not in _QUICK_DTYPE_KINDS:
            return None
        hasher.update(index.dtype.str.encode() + b"\0" + index.to_numpy().tobytes())
    else:
        return None
    if isinstance(value, pd.Series) or len(set(dtypes)) <= 1:
        _update_with_array(hasher, value.to_numpy())
    else:  # mixed dtypes: column by column, so no value is cast
        for _, column in value.items():
            _update_with_array(hasher, column.to_numpy())
    return str(hasher.hexdigest())


def _update_with_array(hasher: Any, array: Any) -> None:
    """Hash an array's memory as it lies (a DataFrame's values are usually the transpose of
    a C-ordered block); the layout is hashed too, so equal bytes in another order differ."""
    import numpy as np

    if not array.flags.c_contiguous and array.flags.f_contiguous:
        layout, array = b"F", array.T
    else:
        layout, array = b"C", np.ascontiguousarray(array)
    hasher.update(layout + repr(array.shape).encode())
    hasher.update(array.reshape(-1).view(np.uint8))
