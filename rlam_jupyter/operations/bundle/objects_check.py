"""Recompute an object's content hash from its bytes alone, without unpickling anything.

Tables are hashed the way :mod:`rlam_jupyter.values.hashing` hashes them (Arrow IPC with the
schema metadata stripped), figures by the PNG rendering stored beside their pickle; every
other kind hashes its stored bytes directly, so a hostile pickle is never loaded just to
be checked.
"""

from __future__ import annotations

from rlam_jupyter.values.digest import FIGURE_KIND, digest_bytes
from rlam_jupyter.values.figures import stored_digest
from rlam_jupyter.values.hashing import hash_value, restore

TABLE_KINDS = ("table", "series", "arrow")


def object_digest(kind: str, payload: bytes) -> str:
    """The digest the engine recorded for an object with these bytes (raises ValueError)."""
    if kind == FIGURE_KIND:
        return stored_digest(payload)
    if kind not in TABLE_KINDS:
        return digest_bytes(kind, payload)
    import pyarrow as pa

    try:
        table = pa.ipc.open_stream(payload).read_all()
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"not a readable Arrow IPC stream ({exc})") from None
    stripped = table.replace_schema_metadata(None)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, stripped.schema) as writer:
        writer.write_table(stripped.combine_chunks())
    return digest_bytes(kind, bytes(sink.getvalue().to_pybytes()))


def object_matches(kind: str, payload: bytes, expected: str) -> bool:
    """True when the bytes hash to ``expected``; tables get a second, pandas-level try."""
    if object_digest(kind, payload) == expected:
        return True
    if kind not in TABLE_KINDS:
        return False
    try:
        return hash_value(restore(kind, payload)) == expected
    except Exception:
        return False
