"""The journal's line format: one checksummed JSON object per line, and its Arrow schema.

Each line is one JSON object whose last field is a CRC32 of everything before it::

    {"_t":"steps","run_id":"…",…,"_c":"1a2b3c4d"}

so a line is still plain JSON (bulk readers parse whole files without copying them)
and a torn or corrupt line is detected by its checksum. The writer
(:mod:`rlam_jupyter.store.journal`), its Arrow batches
(:mod:`rlam_jupyter.store.journal_batches`) and the bulk reader
(:mod:`rlam_jupyter.store.journal_reader`) all speak it from here, so none of them
imports another to learn it.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.json as pa_json

from rlam_jupyter.store.schema import TABLES

CRC_FIELD = "_c"
_TAIL_FIELDS = ("_t", CRC_FIELD)
TRAILER_HEAD = b',"_c":"'
TRAILER_LEN = len(TRAILER_HEAD) + 8 + 2  # ,"_c":" + 8 hex digits + "}
"""Length of a line's checksum trailer, ``,"_c":"1a2b3c4d"}``."""


def frame(record: Mapping[str, Any]) -> bytes:
    """One journal line: the record as compact JSON with its checksum as last field.

    ``None`` values are left out (readers fill missing columns with null), which keeps
    lines short. The kind (``_t``) comes right before the checksum, where a bulk reader
    finds it without parsing the line."""
    fields = {k: v for k, v in record.items() if v is not None and k not in _TAIL_FIELDS}
    if "_t" in record:
        fields["_t"] = record["_t"]
    body = json.dumps(fields, separators=(",", ":"), default=str).encode()
    head = body[:-1]
    return head + b',"_c":"%08x"}\n' % zlib.crc32(head)


def line_id(line: bytes) -> str | None:
    """The identity of a journal file: the checksum of its complete first line (None while
    that line is incomplete). A later file of the same name has another."""
    return f"{zlib.crc32(line):08x}" if line.endswith(b"\n") else None


def decode_line(line: bytes | memoryview) -> dict[str, Any] | None:
    """The record of one line (without its newline), or None when torn or corrupt.

    Also reads the first format (``<crc32 hex> <json>``), so older journals stay readable."""
    raw = bytes(line)
    if raw.startswith(b"{"):
        if not line_is_intact(raw):
            return None
        payload = raw
    elif len(raw) >= 10 and raw[8:9] == b" ":
        payload = raw[9:]
        try:
            if int(raw[:8], 16) != zlib.crc32(payload):
                return None
        except ValueError:
            return None
    else:
        return None
    try:
        record = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    record.pop(CRC_FIELD, None)
    return record


def line_is_intact(line: bytes) -> bool:
    """True when a current-format line (no newline) carries a matching checksum."""
    if len(line) <= TRAILER_LEN or line[-TRAILER_LEN:-10] != TRAILER_HEAD:
        return False
    if line[-2:] != b'"}':
        return False
    try:
        return int(line[-10:-2], 16) == zlib.crc32(memoryview(line)[: len(line) - TRAILER_LEN])
    except ValueError:
        return False


def _union_schema() -> pa.Schema:
    """Every column of every table (timestamps as their stored int microseconds), plus ``_t``."""
    fields: dict[str, pa.DataType] = {"_t": pa.string()}
    for table, schema in TABLES.items():
        for column in schema:
            kind = pa.int64() if pa.types.is_timestamp(column.type) else column.type
            if fields.setdefault(column.name, kind) != kind:
                raise TypeError(f"column {column.name!r} of {table} has two types")
    return pa.schema(list(fields.items()))


UNION_SCHEMA = _union_schema()


_ALL_KINDS = pa_json.ParseOptions(explicit_schema=UNION_SCHEMA, unexpected_field_behavior="ignore")


def parse_options(kinds: set[bytes]) -> pa_json.ParseOptions:
    """Only the columns of the record kinds present: the parser fills every column of
    its schema for every line, so a file of steps parses faster without the columns
    of the other tables."""
    names = {"_t"}
    for kind in kinds:
        name = kind.decode(errors="replace")
        if name in TABLES:
            names.update(TABLES[name].names)
        elif name != "header":
            return _ALL_KINDS  # a line that does not end with its kind: older writer
    schema = pa.schema([f for f in UNION_SCHEMA if f.name in names])
    return pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
