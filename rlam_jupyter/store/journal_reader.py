"""Read journal files into Arrow tables in bulk: what the catalog and compaction use.

Every line is checked first (:mod:`rlam_jupyter.store.journal_scan`: its shape with
numpy for the whole file at once, its CRC32 with one call per line). A whole file whose
every line is intact is then parsed by DuckDB's JSON reader (about twice as fast as
Arrow's per core); its rows are matched to the checked lines by their checksums, so a
line appended meanwhile is never taken in. Other ranges are parsed by Arrow's JSON
reader straight from the file's bytes (a line is plain JSON, so nothing is copied).
Old-format lines and anything the bulk parsers refuse fall back to the record-at-a-time
decoder, so a bad record costs only itself.
"""

from __future__ import annotations

import io
import mmap
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from rlam_jupyter.store.journal_batches import CRC_COLUMN, list_batches, load_batch
from rlam_jupyter.store.journal_format import (
    CRC_FIELD,
    UNION_SCHEMA,
    decode_line,
    line_id,
    parse_options,
)
from rlam_jupyter.store.journal_scan import scan_lines, written_crc_digits, written_crcs
from rlam_jupyter.store.schema import TABLES

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
    parsed_by: str = ""
    """Where the rows came from, joined by ``+``: ``batches`` (the writer's verified Arrow
    batches), ``duckdb`` (a whole intact file), ``arrow``, or ``records`` (one at a time:
    older lines, or values the bulk readers refused)."""


def read_journal(path: Path, start: int = 0, first_line: int = 1) -> JournalChunk | None:
    """Read ``path`` from byte ``start`` (a line boundary); None if the file is gone.

    ``first_line`` is the line number at ``start``, used only in problem reports. A whole
    file is memory-mapped rather than copied (journals are only ever appended to)."""
    try:
        with open(path, "rb") as handle:
            head = handle.readline()
            size = os.fstat(handle.fileno()).st_size
            data: Any
            if start == 0 and size > 0:
                data = mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_READ)
            else:
                handle.seek(start)
                data = handle.read()
    except FileNotFoundError:  # compacted and removed between listing and reading
        return None
    return parse_journal(path, head, data, start, first_line)


def header_id_of(head: bytes) -> str | None:
    """Identity of a journal file: the checksum of its (complete) first line."""
    return _header(head)[0]


def parse_journal(
    path: Path, head: bytes, data: Any, start: int = 0, first_line: int = 1
) -> JournalChunk:
    """Parse ``data``, the bytes of ``path`` from offset ``start``; ``head`` is its first line.

    Every line is checked here; runs of intact lines that their writer already saved as
    an Arrow batch are taken from the batch instead of being parsed again."""
    header_id, version = _header(head)
    scan = scan_lines(path, data, first_line)
    chunk = JournalChunk(
        path,
        start,
        start + scan.complete,
        start + len(data),
        header_id,
        version,
        lines=scan.lines,
        problems=list(scan.problems),
        torn=scan.torn,
    )
    keep, kinds_of, slow, line_ends = scan.spans, scan.kinds_of, scan.slow, scan.ends
    batches = _matching_batches(path, header_id, data, line_ends, keep, start)
    pieces: list[tuple[int, pa.Table]] = []
    readers = ["batches"] if batches else []
    whole = None
    whole_file = start == 0 and not slow and not chunk.problems and keep == [(0, chunk.end)]
    if whole_file and not batches:
        schema = parse_options(kinds_of()).explicit_schema
        whole = _parse_whole_file(path, np.frombuffer(data, dtype=np.uint8), line_ends, schema)
    if whole is not None:
        pieces.append((0, whole))
        readers.append("duckdb")
    else:
        pieces += [(a, table) for a, _b, table in batches]
        for span in _uncovered(keep, [(a, b) for a, b, _table in batches]):
            if batches and start == 0 and version is not None and span == (0, len(head)):
                continue  # the header line alone: it holds no record
            table, reader = _parse(data, [span], kinds_of(), chunk)
            pieces.append((span[0], table))
            readers.append(reader)
    if slow:
        pieces.append((len(data), _from_records(slow, chunk)))
        readers.append("records")
    chunk.parsed_by = "+".join(dict.fromkeys(readers))
    if pieces:
        parts = [table for _offset, table in sorted(pieces, key=lambda piece: piece[0])]
        table = pa.concat_tables(parts, promote_options="default") if len(parts) > 1 else parts[0]
        chunk.tables = split_by_kind(table)
        chunk.records = sum(t.num_rows for t in chunk.tables.values())
    return chunk


def _matching_batches(
    path: Path,
    header_id: str | None,
    data: Any,
    ends: np.ndarray,
    intact: list[tuple[int, int]],
    start: int,
) -> list[tuple[int, int, pa.Table]]:
    """The writer's batches that stand for lines of ``data``, as (first byte, byte after,
    rows) relative to ``data``: a batch counts only if its lines are intact (checked by
    their checksums) and it has one row per line carrying exactly that line's checksum."""
    found: list[tuple[int, int, pa.Table]] = []
    if header_id is None or not intact:
        return found
    raw = np.frombuffer(data, dtype=np.uint8)
    after = ends + 1  # where the line after each line starts
    for first, end, file in list_batches(path):
        a, b = first - start, end - start
        if a < 0 or not any(s <= a and b <= e for s, e in intact):
            continue
        lo = int(np.searchsorted(after, a, side="right"))  # lines ending at or before a
        hi = int(np.searchsorted(after, b, side="left"))  # the line ending at b
        if (a and (lo == 0 or after[lo - 1] != a)) or hi >= len(after) or after[hi] != b:
            continue
        rows = load_batch(file, header_id)
        if rows is None or rows.num_rows != hi - lo + 1:
            continue
        if not np.array_equal(written_crcs(raw, ends[lo : hi + 1]), rows[CRC_COLUMN].to_numpy()):
            continue
        found.append((a, b, rows.drop_columns([CRC_COLUMN])))
    return found


def _uncovered(
    spans: list[tuple[int, int]], covered: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """``spans`` minus the ``covered`` intervals (each inside one span, none overlapping)."""
    rest = []
    for s, e in spans:
        position = s
        for a, b in sorted(c for c in covered if s <= c[0] and c[1] <= e):
            if a > position:
                rest.append((position, a))
            position = max(position, b)
        if e > position:
            rest.append((position, e))
    return rest


def _header(line: bytes) -> tuple[str | None, int | None]:
    header_id = line_id(line)
    if header_id is None:
        return None, None
    record = decode_line(line[:-1])
    if record is None or record.get("_t") != "header":
        return header_id, None
    return header_id, int(record.get("schema_version", 0) or 0)


def _parse(
    data: Any, spans: list[tuple[int, int]], kinds: set[bytes], chunk: JournalChunk
) -> tuple[pa.Table, str]:
    """The lines in ``spans`` by Arrow's JSON reader, and which reader it took."""
    view = memoryview(data)
    if len(spans) == 1:
        a, b = spans[0]
        source: Any = pa.BufferReader(pa.py_buffer(view[a:b]))
    else:
        source = io.BytesIO(b"".join(view[a:b] for a, b in spans))
    options = parse_options(kinds)
    try:
        return pa_json.read_json(source, read_options=_READ, parse_options=options), "arrow"
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # A value of the wrong type somewhere (an int column holding text): decode
        # record by record so only the bad records are lost, and reported.
        records: list[dict[str, Any]] = []
        for a, b in spans:
            for line in view[a:b].tobytes().splitlines():
                record = decode_line(line)
                if record is not None and record.get("_t") != "header":
                    records.append(record)
        return _from_records(records, chunk), "records"


_DUCKDB_TYPES = {
    pa.string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
}
_GLOB_CHARACTERS = frozenset("*?[]{}")
_connections = threading.local()


def _parse_whole_file(
    path: Path, raw: np.ndarray, ends: np.ndarray, schema: pa.Schema
) -> pa.Table | None:
    """Every line of ``path`` (all intact: ``raw`` holds the checked bytes, ``ends`` where
    each line ends) parsed by DuckDB; None when DuckDB cannot, and the caller uses Arrow.

    DuckDB reads the file itself, which may have grown since it was checked: only as
    many rows as there were lines are kept, and each kept row must carry its line's
    checksum, so the rows are exactly the checked lines, in order."""
    if _GLOB_CHARACTERS.intersection(str(path)) or CRC_FIELD in schema.names:
        return None
    types = [_DUCKDB_TYPES.get(f.type) for f in schema]
    if None in types:
        return None
    columns = ", ".join(f"'{f.name}': '{t}'" for f, t in zip(schema, types, strict=True))
    quoted = str(path).replace("'", "''")
    query = (
        f"SELECT * FROM read_json('{quoted}', format = 'newline_delimited', "
        f"columns = {{{columns}, '{CRC_FIELD}': 'VARCHAR'}}, maximum_object_size = 268435456)"
    )
    try:
        table = _duckdb().sql(query).to_arrow_table()
    except Exception:  # a value DuckDB will not take: Arrow's reader decides
        return None
    if table.num_rows < len(ends):
        return None
    table = table.slice(0, len(ends))
    written = written_crc_digits(raw, ends)
    parsed = table.column(CRC_FIELD).cast(pa.binary()).to_numpy(zero_copy_only=False)
    if not np.array_equal(parsed.astype("S8"), written):
        return None
    return table.drop_columns([CRC_FIELD]).cast(schema)


def _duckdb() -> Any:
    """One single-threaded in-memory DuckDB per thread (compaction parses several journals
    at once, one per thread; opening a connection costs more than parsing a file)."""
    connection = getattr(_connections, "value", None)
    if connection is None:
        connection = duckdb.connect(":memory:", config={"threads": 1})
        _connections.value = connection
    return connection


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
        rows = table if len(present) == 1 else _rows_of(table, pc.equal(kinds, name))
        out[name] = conform(rows, schema)
    return out


def _rows_of(table: pa.Table, mask: pa.ChunkedArray) -> pa.Table:
    """The rows where ``mask`` is true: a zero-copy slice when they are one block (a
    journal's steps usually sit between its first and last run record), else a filter."""
    where = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
    if len(where) and int(where[-1]) - int(where[0]) + 1 == len(where):
        return table.slice(int(where[0]), len(where))
    return table.filter(mask)


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
