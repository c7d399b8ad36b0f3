"""``import_bundle``: make a bundle's runs browsable and forkable in another store.

The bundle is checked first (every check ``verify`` runs without executing anything);
a bundle that fails any of them is refused and nothing is written. Then objects are
copied into ``objects/`` (atomically, under paths built from their validated hashes,
never from entry names) and the trace rows become journal records under
``journal/<run_id>/``, where every reader (DuckDB views, sidebar, replay, fork) finds
them like any other run. Runs already in the store are left alone, so importing twice
changes nothing.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from rlam_jupyter.operations.bundle import format as fmt
from rlam_jupyter.operations.bundle.archive import DEFAULT_LIMITS, Limits
from rlam_jupyter.operations.bundle.checks import inspect_bundle
from rlam_jupyter.operations.bundle.inspection import Inspection
from rlam_jupyter.operations.bundle.problems import BundleError, Problem
from rlam_jupyter.store.atomic import write_atomically
from rlam_jupyter.store.catalog import connect
from rlam_jupyter.store.journal import JournalWriter
from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.store.resolve import StoreRef, resolve_store
from rlam_jupyter.store.schema import TABLES


@dataclass(frozen=True)
class ImportResult:
    """What an import added to the store."""

    store: Path
    imported: tuple[str, ...]
    already_present: tuple[str, ...]
    objects_written: int
    records_written: int
    notebook: Path | None
    bundle_hash: str

    def summary(self) -> str:
        lines = [
            f"imported {len(self.imported)} run(s) into {self.store} "
            f"({self.records_written} trace records, {self.objects_written} new objects)"
        ]
        if self.already_present:
            lines.append(f"already in the store, left alone: {', '.join(self.already_present)}")
        if self.notebook:
            lines.append(f"notebook: {self.notebook}")
        if self.imported:
            lines.append(
                f"browse: rlam runs --store {self.store}   fork: %rlam fork {self.imported[-1]} --at 3"
            )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "store": str(self.store),
            "imported": list(self.imported),
            "already_present": list(self.already_present),
            "objects_written": self.objects_written,
            "records_written": self.records_written,
            "notebook": str(self.notebook) if self.notebook else None,
            "blake3": self.bundle_hash,
        }


def import_bundle(
    path: str | os.PathLike[str],
    store: StoreRef = None,
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> ImportResult:
    """Check a bundle and add its runs to ``store``; raises :class:`BundleError` if any check fails."""
    inspection = inspect_bundle(Path(path), limits)
    try:
        if not inspection.ok:
            raise BundleError(
                inspection.problems, f"refused to import {Path(path).name}; nothing was written"
            )
        layout = resolve_store(store)
        return _write(inspection, layout)
    finally:
        inspection.close()


def _write(inspection: Inspection, layout: StoreLayout) -> ImportResult:
    rows, archive = inspection.rows, inspection.archive
    assert rows is not None
    assert archive is not None
    present: set[str] = set()
    if layout.root.exists():
        con = connect(layout)
        present = {r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()}
        con.close()
    bundle_runs = [r["run_id"] for r in rows.runs]
    new_runs = [r for r in bundle_runs if r not in present]
    objects_written = 0
    for name, digest in sorted(inspection.objects.items()):
        match = fmt.OBJECT_NAME.match(name)
        assert match is not None  # only validated names are in inspection.objects
        target = layout.objects_dir / digest[:2] / f"{digest}.{match.group(3)}"
        if target.exists():
            continue
        data = archive.read(name)
        write_atomically(target, data)
        objects_written += 1
    records = _records_by_run(inspection.tables, set(new_runs))
    writer_id = f"import-{inspection.manifest_hash[:20]}"
    written = 0
    for run_id in new_runs:
        if not fmt.RUN_ID.match(run_id):  # checked already; a path is at stake, so again
            raise BundleError([Problem(fmt.trace_entry("runs"), f"unsafe run id {run_id!r}")])
        writer = JournalWriter(layout, run_id, writer_id)
        try:
            for kind, record in records.get(run_id, []):
                writer.append(kind, record)
                written += 1
        finally:
            writer.close()
    notebook = _write_notebook(inspection, layout)
    return ImportResult(
        store=layout.root,
        imported=tuple(new_runs),
        already_present=tuple(r for r in bundle_runs if r in present),
        objects_written=objects_written,
        records_written=written,
        notebook=notebook,
        bundle_hash=inspection.manifest_hash,
    )


def _records_by_run(
    tables: dict[str, pa.Table], new_runs: set[str]
) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Journal records grouped by the run whose journal gets them.

    Artifact records first recorded by a run outside the bundle (a cache hit's
    source) go to the journal of the first bundle run that references them.
    """
    grouped: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    home_of_artifact: dict[str, str] = {}
    for edge in tables["edges"].to_pylist():
        if edge["type"] in ("used", "generated") and edge["run_id"] in new_runs:
            home_of_artifact.setdefault(edge["dst"], edge["run_id"])
    order = ["environments", "runs", "steps", "artifacts", "edges", "llm_calls", "approvals"]
    for kind in order + [t for t in TABLES if t not in order]:
        table = tables[kind]
        for record in _journal_rows(table):
            run_id = record.get("run_id")
            if kind == "artifacts" and run_id not in new_runs:
                run_id = home_of_artifact.get(record["artifact_id"])
            if run_id in new_runs:
                grouped[run_id].append((kind, record))
    return grouped


def _journal_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as the journal stores them: timestamps as integer microseconds."""
    columns = []
    for field in table.schema:
        column = table.column(field.name)
        if pa.types.is_timestamp(field.type):
            column = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        columns.append(column)
    rows: list[dict[str, Any]] = pa.Table.from_arrays(columns, names=table.column_names).to_pylist()
    return rows


def _write_notebook(inspection: Inspection, layout: StoreLayout) -> Path | None:
    manifest = inspection.manifest
    if manifest is None or not manifest.notebook or inspection.archive is None:
        return None
    name = manifest.notebook.removeprefix(fmt.NOTEBOOK_DIR)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    target = layout.root / "imported" / inspection.manifest_hash[:16] / safe
    if not target.exists():
        write_atomically(target, inspection.archive.read(manifest.notebook))
    return target
