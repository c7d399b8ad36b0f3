"""Compaction: journals of closed runs (and, on demand, open runs up to now) → Parquet.

Per run, under that run's compaction lock (writers and readers never take it):

1. read the journal bytes the run's manifest does not cover yet;
2. write them as new zstd Parquet parts, ``parquet/<table>/run_id=<id>/part-<ulid>.parquet``
   (temp name, then rename), so a query for one run opens only that run's files;
3. publish the run's manifest atomically: the new parts become visible at the same
   moment as the journal bytes they cover become skipped, so no reader sees a
   record twice or misses one;
4. only then, for a closed run, delete the journals that are fully covered.

A crash between any two steps leaves a readable store: unpublished parts are
invisible (and removed by the next compaction of the run), and journals that are
still there after a publish are skipped up to the covered offset. That holds for a
killed process; against power loss, ``RLAM_FSYNC=1`` fsyncs parts, manifests and
folders before journals go, as it fsyncs every journal append.
"""

from __future__ import annotations

import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from ulid import ULID

from rlam_jupyter.store.atomic import fsync_dir
from rlam_jupyter.store.journal_batches import remove_batches
from rlam_jupyter.store.journal_reader import JournalChunk, header_id_of, read_journal
from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.store.manifest import (
    Coverage,
    Manifest,
    load_manifest,
    publish,
    run_lock,
)
from rlam_jupyter.store.resolve import StoreRef, resolve_store
from rlam_jupyter.store.schema import TABLES
from rlam_jupyter.store.versioning import check_readable, parquet_metadata

COMPRESSION = "zstd"
AUTO_ENV = "RLAM_AUTO_COMPACT"
"""Set to ``0`` to keep journals when runs end (compact later with ``rlam compact``)."""


@dataclass
class CompactionReport:
    """What one :func:`compact` call did."""

    runs: list[str] = field(default_factory=list)
    """Runs whose new records went to Parquet."""
    closed: list[str] = field(default_factory=list)
    """Runs now wholly in Parquet (their journals removed)."""
    busy: list[str] = field(default_factory=list)
    """Runs skipped because another compaction held them (only with ``wait=False``)."""
    rows: dict[str, int] = field(default_factory=dict)
    parts: int = 0
    journals_removed: int = 0
    seconds: float = 0.0

    def merge(self, other: CompactionReport) -> None:
        self.runs += other.runs
        self.closed += other.closed
        self.busy += other.busy
        for table, n in other.rows.items():
            self.rows[table] = self.rows.get(table, 0) + n
        self.parts += other.parts
        self.journals_removed += other.journals_removed

    def summary(self) -> str:
        rows = ", ".join(f"{n} {t}" for t, n in sorted(self.rows.items()) if n)
        text = (
            f"compacted {len(self.runs)} run(s) into {self.parts} Parquet part(s)"
            f"{' (' + rows + ')' if rows else ''}; {len(self.closed)} closed run(s) now "
            f"wholly in Parquet, {self.journals_removed} journal file(s) removed; "
            f"{self.seconds:.2f} s"
        )
        if self.busy:
            text += f"; {len(self.busy)} run(s) busy in another compaction, skipped"
        return text


def compact(
    store: StoreRef = None,
    runs: list[str] | None = None,
    *,
    include_open: bool = False,
    wait: bool = True,
) -> CompactionReport:
    """Compact closed runs (all, or ``runs``) into Parquet; ``include_open`` also
    compacts open runs up to now, keeping their journals for the records still to come.

    Safe while kernels write and readers read; returns a :class:`CompactionReport`."""
    layout = resolve_store(store)
    started = time.perf_counter()
    run_ids = runs if runs is not None else journal_run_ids(layout)

    def one(run_id: str) -> CompactionReport:
        part = CompactionReport()
        with run_lock(layout, run_id, wait=wait) as locked:
            if locked:
                _compact_run(layout, run_id, include_open, part)
            else:
                part.busy.append(run_id)
        return part

    # Runs are independent (a lock each); Arrow parses and writes outside the GIL,
    # so a few threads keep every core busy when many runs are compacted at once.
    workers = min(len(run_ids), os.cpu_count() or 1, 8)
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(one, run_ids))
    else:
        parts = [one(run_id) for run_id in run_ids]
    report = CompactionReport()
    for part in parts:
        report.merge(part)
    report.seconds = time.perf_counter() - started
    return report


def journal_run_ids(layout: StoreLayout) -> list[str]:
    """Runs that still have journal files."""
    if not layout.journal_dir.is_dir():
        return []
    return sorted(p.name for p in layout.journal_dir.iterdir() if p.is_dir())


def compact_ended_run(layout: StoreLayout, run_id: str) -> CompactionReport | None:
    """Automatic compaction when a run ends: never waits for a lock, never raises
    (the journal stays the source of truth if anything goes wrong)."""
    if os.environ.get(AUTO_ENV, "1") == "0":
        return None
    try:
        return compact(layout, [run_id], wait=False)
    except Exception:
        return None


def _compact_run(
    layout: StoreLayout, run_id: str, include_open: bool, report: CompactionReport
) -> None:
    previous = load_manifest(layout, run_id)
    manifest = previous or Manifest(run_id)
    check_readable([manifest.schema_version], layout.root)
    folder = layout.run_journal_dir(run_id)
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    chunks = [c for c in (_read_uncovered(p, manifest) for p in files) if c is not None]
    check_readable(
        [c.schema_version if c.schema_version is not None else 0 for c in chunks], layout.root
    )
    closed = manifest.closed or _closes(chunks)
    if not closed and not include_open:
        return
    durable = closed and os.environ.get("RLAM_FSYNC", "0") == "1"
    _remove_orphans(layout, run_id, manifest)
    new_rows = {name: [c.tables[name] for c in chunks if name in c.tables] for name in TABLES}
    written: list[Path] = []
    for table, pieces in new_rows.items():
        if not pieces:
            continue
        rows = pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]
        written.append(_write_part(layout, table, run_id, rows, durable=durable))
        relative = str(written[-1].relative_to(layout.root))
        manifest.parts.setdefault(table, []).append(relative)
        manifest.rows[table] = manifest.rows.get(table, 0) + rows.num_rows
        report.rows[table] = report.rows.get(table, 0) + rows.num_rows
    for chunk in chunks:
        old = manifest.covered(chunk.path.name, chunk.header_id)
        manifest.journals[chunk.path.name] = Coverage(
            chunk.header_id,
            chunk.end,
            (old.lines if old else 0) + chunk.lines,
            (old.records if old else 0) + chunk.records,
        )
        # Covered bytes are never read again: keep what was wrong in them for reports.
        manifest.problems.extend(p for p in chunk.problems if p is not chunk.torn)
    changed = bool(written) or previous is None or closed != previous.closed
    manifest.closed = closed
    if changed or any(c.lines for c in chunks):
        if durable:
            for part_folder in {p.parent for p in written}:
                fsync_dir(part_folder)
        manifest.generation += 1
        publish(layout, manifest, durable=durable)
    report.parts += len(written)
    if written:
        report.runs.append(run_id)
    if closed:
        report.journals_removed += _remove_covered(layout, folder, chunks, manifest, durable)
        if not folder.exists():
            report.closed.append(run_id)


def _read_uncovered(path: Path, manifest: Manifest) -> JournalChunk | None:
    """The part of one journal the manifest does not cover (all of it if it is a new file)."""
    head = _first_line(path)
    if head is None:
        return None
    coverage = manifest.covered(path.name, header_id_of(head))
    if coverage is None:
        return read_journal(path)
    return read_journal(path, coverage.offset, coverage.lines + 1)


def _first_line(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.readline()
    except FileNotFoundError:
        return None


def _closes(chunks: list[JournalChunk]) -> bool:
    """True when the newest run record among ``chunks`` says the run ended."""
    newest: tuple[int, str] | None = None
    for chunk in chunks:
        runs = chunk.tables.get("runs")
        if runs is None or runs.num_rows == 0:
            continue
        events = runs.column("event_no").to_pylist()
        statuses = runs.column("status").to_pylist()
        for event, status in zip(events, statuses, strict=True):
            if newest is None or (event or 0) > newest[0]:
                newest = (event or 0, status or "open")
    return newest is not None and newest[1] != "open"


def _write_part(
    layout: StoreLayout, table: str, run_id: str, rows: pa.Table, durable: bool
) -> Path:
    import pyarrow.parquet as pq

    folder = layout.parquet_dir / table / f"run_id={run_id}"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"part-{ULID()}.parquet"
    temp = folder / f".tmp-{name}"
    if not _ascending(rows.column("event_no")):
        rows = rows.sort_by([("event_no", "ascending")])
    rows = rows.replace_schema_metadata(parquet_metadata(table))
    try:
        pq.write_table(rows, temp, compression=COMPRESSION)
        if durable:
            fd = os.open(temp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        target = folder / name
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return target


def _ascending(values: pa.ChunkedArray) -> bool:
    """True when ``values`` (no nulls) are already in order: one writer's journal is,
    and sorting would copy every column."""
    if values.null_count or len(values) < 2:
        return not values.null_count
    import pyarrow.compute as pc

    return bool(pc.all(pc.less_equal(values[:-1], values[1:])).as_py())


def _remove_orphans(layout: StoreLayout, run_id: str, manifest: Manifest) -> None:
    """Delete parts of this run that no manifest lists (left by a crashed compaction).

    Only a holder of the run's lock writes parts for it, so none is in progress."""
    listed = {p for parts in manifest.parts.values() for p in parts}
    for table in TABLES:
        folder = layout.parquet_dir / table / f"run_id={run_id}"
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if str(path.relative_to(layout.root)) not in listed:
                with contextlib.suppress(OSError):
                    path.unlink()


def _remove_covered(
    layout: StoreLayout,
    folder: Path,
    chunks: list[JournalChunk],
    manifest: Manifest,
    durable: bool,
) -> int:
    """Delete journals of a closed run whose every byte is in published Parquet
    (a torn tail, never to be completed, goes too: its report moves to the manifest)."""
    removed = 0
    torn: list[tuple[str, int, str]] = []
    for chunk in chunks:
        try:
            size = chunk.path.stat().st_size
        except FileNotFoundError:
            continue
        if size != chunk.size:
            continue  # written to since it was read: keep it for the next compaction
        if chunk.torn is not None:
            torn.append(chunk.torn)
        chunk.path.unlink()
        remove_batches(chunk.path)
        removed += 1
    if torn:
        manifest.problems.extend(torn)
        manifest.generation += 1
        publish(layout, manifest, durable)
    for leftover in folder.glob("*.batches"):
        if not leftover.with_suffix(".jsonl").exists():  # its journal went in a crash
            remove_batches(leftover)
    with contextlib.suppress(OSError):
        folder.rmdir()
    if removed and durable:
        fsync_dir(folder.parent)
    return removed
