"""The trace check: every trace table is there, readable, of the trace schema, and safe
to import (run ids that can name folders, object paths inside the store, action
sources that match their hashes).

On success the tables and their rows are left on the inspection for the graph,
reference and document checks, and for ``import``.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from rlam_jupyter.operations.bundle import format as fmt
from rlam_jupyter.operations.bundle.archive import DEFAULT_LIMITS, Limits
from rlam_jupyter.operations.bundle.collect import with_schema
from rlam_jupyter.operations.bundle.inspection import FAILED, OK, Check, Inspection
from rlam_jupyter.operations.bundle.problems import Problem
from rlam_jupyter.operations.bundle.trace_rows import TraceRows
from rlam_jupyter.store.schema import ADDED_LATER, SCHEMA_VERSION, TABLES


def check_trace(result: Inspection) -> None:
    """Add the trace check; sets ``result.tables`` and, when all are usable, ``result.rows``."""
    problems: list[Problem] = []
    limits = result.archive.limits if result.archive else DEFAULT_LIMITS
    for table_name, schema in TABLES.items():
        entry = fmt.trace_entry(table_name)
        data = result.contents.get(entry)
        if not isinstance(data, bytes):
            listed = result.manifest is not None and entry in result.manifest.files
            if table_name in ADDED_LATER and not listed:
                result.tables[table_name] = schema.empty_table()  # a bundle from before it
                continue
            if not any(p.file == entry for c in result.checks for p in c.problems):
                problems.append(Problem(entry, "missing: every bundle carries all trace tables"))
            continue
        table, problem = _read_parquet(data, schema, table_name, limits)
        if table is not None and problem is None:
            problem = _unsafe_run_ids(table)
        if table is not None and problem is None and table_name == "artifacts":
            problem = _unsafe_object_paths(table)
        if table is not None and problem is None and table_name == "actions":
            problem = _altered_action_sources(table)
        if problem:
            problems.append(Problem(entry, problem))
        elif table is not None:
            result.tables[table_name] = table
    for name in result.contents:
        if (
            name.startswith(fmt.TRACE_DIR)
            and name.removeprefix(fmt.TRACE_DIR).removesuffix(".parquet") not in TABLES
        ):
            problems.append(Problem(name, "unknown trace table"))
    if problems or len(result.tables) != len(TABLES):
        why = "" if problems else " (their files failed the manifest check)"
        result.add(Check("trace", FAILED, f"trace tables unusable{why}", problems))
        return
    result.rows = TraceRows.from_tables(result.tables)
    counts = ", ".join(f"{n} {t.num_rows}" for n, t in result.tables.items())
    result.add(Check("trace", OK, f"{len(TABLES)} tables, schemas match ({counts})"))


def _altered_action_sources(table: pa.Table) -> str | None:
    """A recorded action source whose text does not match its hash would be executed by
    ``verify --reexecute``: refuse the bundle instead."""
    # lazy: pydantic (~55 ms), which rlam export never loads
    from rlam_jupyter.actions.rebuild import RecordedSource
    from rlam_jupyter.actions.source import source_digest  # lazy: pydantic, for rlam export

    for row in table.to_pylist():
        source = RecordedSource.from_row(row)
        if source_digest(source.origin, source.payload) != source.source_hash:
            return f"the recorded source of {source.action_version} does not match its hash"
    return None


def _unsafe_run_ids(table: pa.Table) -> str | None:
    for value in set(table.column("run_id").to_pylist()):
        if not isinstance(value, str) or not fmt.RUN_ID.match(value):
            return (
                f"unsafe run id {value!r} (run ids are letters, digits, '-' and '_'; "
                "they name folders on import)"
            )
    return None


def _unsafe_object_paths(table: pa.Table) -> str | None:
    """Replay reads objects by these paths: each must be an object name inside the store."""
    for value in set(table.column("object_path").to_pylist()):
        if value is not None and not fmt.OBJECT_NAME.match(str(value)):
            return f"unsafe object path {str(value)[:80]!r} (must be objects/xx/<blake3>.<kind>)"
    return None


def _read_parquet(
    data: bytes, schema: pa.Schema, table_name: str, limits: Limits
) -> tuple[pa.Table | None, str | None]:
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        metadata = parquet.metadata
        expanded = sum(
            metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)
        )
        if expanded > limits.max_entry_bytes:
            return None, f"expands to {expanded:,} bytes, more than the limit (Parquet bomb?)"
        file_schema = parquet.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as exc:
        return None, f"not a readable Parquet file ({exc})"
    version = (file_schema.metadata or {}).get(b"rlam.schema_version")
    if version is not None and version.isdigit() and int(version) > SCHEMA_VERSION:
        return None, f"written with trace schema {int(version)}, newer than {SCHEMA_VERSION}"
    expected = {f.name: f.type for f in schema}
    wrong = []
    for field_ in file_schema:
        if field_.name not in expected:
            wrong.append(f"unknown column {field_.name!r}")
        elif field_.type != expected[field_.name]:
            wrong.append(
                f"column {field_.name!r} is {field_.type}, the {table_name} table needs "
                f"{expected[field_.name]}"
            )
    present = set(file_schema.names)
    for required in fmt.REQUIRED_COLUMNS.get(table_name, ()):
        if required not in present:
            wrong.append(f"required column {required!r} is missing")
    if wrong:
        return None, "wrong schema: " + "; ".join(wrong[:6])
    try:
        table = parquet.read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        return None, f"not a readable Parquet file ({exc})"
    return with_schema(table, schema), None
