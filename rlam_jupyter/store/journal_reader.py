"""Read journal files into Arrow tables in bulk: what the catalog and compaction use.

Lines are checked one by one (a CRC32 each) but parsed all at once by Arrow's
JSON reader, straight from the file's bytes: a line is plain JSON, so the intact
part of a file needs no copying. Old-format lines and anything the bulk parser
refuses fall back to the record-at-a-time decoder, so a bad record costs only itself.
"""

from __future__ import annotations

import io
import os
import stat
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from rlam_jupyter.store.journal import decode_line
from rlam_jupyter.store.schema import TABLES

_TRAILER_HEAD = b',"_c":"'
_TRAILER_LEN = len(_TRAILER_HEAD) + 10
_KIND_TAIL = len('"_t":"environments"')


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


def _parse_options(kinds: set[bytes]) -> pa_json.ParseOptions:
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


_READ = pa_json.ReadOptions(block_size=1 << 20)  # several blocks: parsed in parallel


@dataclass
class JournalChunk:
    """The intact records of one journal file from byte ``start`` to ``end``."""

    path: Path
    start: int
    end: int
    """Byte offset just after the last complete line (a torn tail is not covered)."""
    size: int
    header_id: str | None
    """Checksum of the file's first line: tells a file apart from a later one of the same name."""
    schema_version: int | None
    tables: dict[str, pa.Table] = field(default_factory=dict)
    records: int = 0
    lines: int = 0
    problems: list[tuple[str, int, str]] = field(default_factory=list)
    torn: tuple[str, int, str] | None = None
    """The torn last line, if any (also in ``problems``)."""


def read_journal(path: Path, start: int = 0, first_line: int = 1) -> JournalChunk | None:
    """Read ``path`` from byte ``start`` (a line boundary); None if the file is gone.

    ``first_line`` is the line number at ``start``, used only in problem reports."""
    try:
        with open(path, "rb") as handle:
            head = handle.readline()
            handle.seek(start)
            data = handle.read()
    except FileNotFoundError:  # compacted and removed between listing and reading
        return None
    return parse_journal(path, head, data, start, first_line)


def read_head(path: Path) -> tuple[bytes, bytes] | None:
    """The first line and all bytes of a journal file (None if it is gone)."""
    try:
        with open(path, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return None  # a device or pipe in the journal folder is not a journal
            data = handle.read()
    except FileNotFoundError:
        return None
    newline = data.find(b"\n")
    return (data[: newline + 1] if newline >= 0 else data), data


def header_id_of(head: bytes) -> str | None:
    """Identity of a journal file: the checksum of its (complete) first line."""
    return _header(head)[0]


def parse_journal(
    path: Path, head: bytes, data: bytes, start: int = 0, first_line: int = 1
) -> JournalChunk:
    """Parse ``data``, the bytes of ``path`` from offset ``start``; ``head`` is its first line."""
    header_id, version = _header(head)
    chunk = JournalChunk(path, start, start, start + len(data), header_id, version)
    keep, kinds, slow = _scan(data, chunk, first_line)
    parts: list[pa.Table] = []
    if keep:
        parts.append(_parse(data, keep, kinds, chunk))
    if slow:
        parts.append(_from_records(slow, chunk))
    if parts:
        table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        chunk.tables = split_by_kind(table)
        chunk.records = sum(t.num_rows for t in chunk.tables.values())
    return chunk


def _header(line: bytes) -> tuple[str | None, int | None]:
    if not line.endswith(b"\n"):
        return None, None
    record = decode_line(line[:-1])
    header_id = f"{zlib.crc32(line):08x}"
    if record is None or record.get("_t") != "header":
        return header_id, None
    return header_id, int(record.get("schema_version", 0) or 0)


def _scan(
    data: bytes, chunk: JournalChunk, lineno: int
) -> tuple[list[tuple[int, int]], set[bytes], list[dict[str, Any]]]:
    """Check every line; returns byte spans of intact current-format lines to bulk-parse,
    the record kinds they hold (``b""`` when a line does not say), and the decoded
    records of lines that need the slow path (older format)."""
    view = memoryview(data)
    crc = zlib.crc32
    find = data.find
    spans: list[tuple[int, int]] = []
    kinds: set[bytes] = set()
    span_start = 0
    slow: list[dict[str, Any]] = []
    pos, size = 0, len(data)
    while pos < size:
        end = find(b"\n", pos)
        if end < 0:
            chunk.torn = (str(chunk.path), lineno, "torn last record (writer stopped mid-write)")
            chunk.problems.append(chunk.torn)
            break
        intact = (
            end - pos > _TRAILER_LEN
            and data[pos] == 0x7B  # "{"
            and data[end - 2 : end] == b'"}'
            and data[end - _TRAILER_LEN : end - 10] == _TRAILER_HEAD
            and crc(view[pos : end - _TRAILER_LEN]) == int(data[end - 10 : end - 2], 16)
        )
        if not intact:
            if pos > span_start:
                spans.append((span_start, pos))
            span_start = end + 1
            record = decode_line(view[pos:end])
            if record is None:
                chunk.problems.append((str(chunk.path), lineno, "checksum or JSON mismatch"))
            elif record.get("_t") != "header":
                slow.append(record)
        else:
            # frame() writes the kind last: `…,"_t":"steps","_c":"…"}`
            kind_at = data.rfind(b'"_t":"', max(pos, end - _TRAILER_LEN - _KIND_TAIL), end)
            kinds.add(data[kind_at + 6 : end - _TRAILER_LEN - 1] if kind_at >= 0 else b"")
        pos = end + 1
        lineno += 1
        chunk.lines += 1
    if pos > span_start and span_start < size:
        spans.append((span_start, min(pos, size)))
    chunk.end = chunk.start + min(pos, size)
    return spans, kinds, slow


def _parse(
    data: bytes, spans: list[tuple[int, int]], kinds: set[bytes], chunk: JournalChunk
) -> pa.Table:
    view = memoryview(data)
    if len(spans) == 1:
        a, b = spans[0]
        source: Any = pa.BufferReader(pa.py_buffer(view[a:b]))
    else:
        source = io.BytesIO(b"".join(view[a:b] for a, b in spans))
    options = _parse_options(kinds)
    try:
        return pa_json.read_json(source, read_options=_READ, parse_options=options)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # A value of the wrong type somewhere (an int column holding text): decode
        # record by record so only the bad records are lost, and reported.
        records: list[dict[str, Any]] = []
        for a, b in spans:
            for line in view[a:b].tobytes().splitlines():
                record = decode_line(line)
                if record is not None and record.get("_t") != "header":
                    records.append(record)
        return _from_records(records, chunk)


def _from_records(records: list[dict[str, Any]], chunk: JournalChunk) -> pa.Table:
    try:
        return pa.Table.from_pylist(records, schema=UNION_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        good = []
        for record in records:
            try:
                good.append(pa.Table.from_pylist([record], schema=UNION_SCHEMA))
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                chunk.problems.append(
                    (str(chunk.path), 0, f"{record.get('_t')} record with a bad value: {exc}")
                )
        return pa.concat_tables(good) if good else UNION_SCHEMA.empty_table()


def split_by_kind(table: pa.Table) -> dict[str, pa.Table]:
    """One table per record kind, in that table's schema (headers and unknown kinds dropped)."""
    kinds = table.column("_t")
    present = set(pc.unique(kinds).to_pylist())
    out: dict[str, pa.Table] = {}
    for name, schema in TABLES.items():
        if name not in present:
            continue
        rows = table if len(present) == 1 else table.filter(pc.equal(kinds, name))
        out[name] = conform(rows, schema)
    return out


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table``'s columns in ``schema``'s order and types; missing columns become null."""
    columns = []
    for column in schema:
        if column.name in table.column_names:
            values = table.column(column.name)
            if values.type != column.type:
                values = values.cast(column.type)
        else:
            values = pa.nulls(table.num_rows, column.type)
        columns.append(values)
    return pa.Table.from_arrays(columns, schema=schema)
