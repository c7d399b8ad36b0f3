"""Which store a request means, and a reusable DuckDB snapshot of it.

The sidebar sends the notebook's path relative to the server root; its store is the
``.rlam`` folder beside the notebook (or ``RLAM_HOME`` when the server has it set, since
kernels inherit it). Paths never leave the root. Snapshots are cached per store and
rebuilt only when a journal or Parquet file changed, so polling an idle store is a
``stat`` per file and paging a big run does not re-read its journal. A rebuild reads
only the journal bytes appended since the last one (:class:`SnapshotReader`). A writer
that dies changes no file, so a cached snapshot is also dropped when a writer it saw
alive (or unknown) is dead now: its steps in flight must show as interrupted.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import duckdb
import pyarrow as pa

from rlam_jupyter.errors import RlamError
from rlam_jupyter.operations.browse import queries
from rlam_jupyter.store import snapshot as store_snapshot
from rlam_jupyter.store.catalog import Connection, connect_snapshot, register_journal
from rlam_jupyter.store.layout import DEFAULT_DIRNAME, StoreLayout
from rlam_jupyter.store.resolve import resolve_store
from rlam_jupyter.store.schema import LATEST_BY
from rlam_jupyter.store.snapshot import SnapshotReader


class PathError(RlamError):
    """A ``path`` parameter that is malformed (400) or leaves the server root (403)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def resolve_request_store(root_dir: str | os.PathLike[str], path: str | None) -> StoreLayout:
    """The store of the notebook (or folder) ``path``, relative to the server root.

    Raises :class:`PathError` for absolute paths, ``..`` segments, NUL bytes, or a path
    that resolves (through symlinks) outside the root.
    """
    root = Path(root_dir).expanduser().resolve()
    relative = (path or "").strip()
    if "\x00" in relative:
        raise PathError("path contains a NUL byte", 400)
    pure = PurePosixPath(relative.replace("\\", "/"))
    if pure.is_absolute() or (len(relative) > 1 and relative[1] == ":"):
        raise PathError(f"path {relative!r} is absolute; give it relative to the server root", 403)
    if ".." in pure.parts:
        raise PathError(f"path {relative!r} leaves the server root ('..' is not allowed)", 403)
    target = (root / pure).resolve()
    if target != root and root not in target.parents:
        raise PathError(f"path {relative!r} resolves outside the server root", 403)
    home = os.environ.get("RLAM_HOME")
    if home:
        return resolve_store(home)  # s3:// stores: synced from the bucket first
    folder = target if target.is_dir() or not target.suffix else target.parent
    return StoreLayout(folder / DEFAULT_DIRNAME)


def store_stamp(layout: StoreLayout) -> str:
    """A short digest of every journal and Parquet file's size and mtime.

    Changes whenever a writer appends or compaction rewrites; costs one ``stat`` per file.
    """
    digest = hashlib.blake2b(digest_size=12)
    for folder, pattern in ((layout.journal_dir, "*/*.jsonl"), (layout.parquet_dir, "**/*")):
        if not folder.is_dir():
            continue
        for file in sorted(folder.glob(pattern)):
            try:
                info = file.stat()
            except OSError:
                continue
            digest.update(f"{file}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


_MATERIALISED = {
    "steps": "run_id, seq",
    "artifacts": "artifact_id",
    "edges": "dst, src",
}
"""Views a snapshot keeps as tables (sorted for DuckDB's zone maps): same names, same
rows, but a scan instead of a window or DISTINCT over every record at each request."""


@dataclass
class Snapshot:
    """One consistent DuckDB view of a store, valid while its ``stamp`` is current.

    Work done for one request is kept for the next: materialised views, the step
    positions of every run, each run's step index.
    """

    layout: StoreLayout
    stamp: str
    con: Connection
    reader: SnapshotReader
    """Reads the next snapshot of the store from where this one left off."""
    source: store_snapshot.Snapshot | None = None
    """The store snapshot the connection shows (its writers' verdicts are re-tested)."""
    _materialised: set[str] = field(default_factory=set)
    _views: dict[str, str] = field(default_factory=dict)
    """How ``connect()`` defined each materialised view (to turn it back into one)."""
    _positions: pa.Table | None = None
    _indexes: OrderedDict[str, pa.Table] = field(default_factory=OrderedDict)

    def materialise(self, *views: str) -> Connection:
        """Turn ``views`` into tables on first use; returns the connection."""
        for view in views:
            if view not in self._materialised:
                order = _MATERIALISED[view]
                self._views[view] = _view_sql(self.con, view)
                self.con.execute(
                    f"CREATE TABLE _{view}_snapshot AS SELECT * FROM {view} ORDER BY {order}"
                )
                self.con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM _{view}_snapshot")
                self._materialised.add(view)
        return self.con

    def step_index(self, run_id: str, keep: int = 8) -> pa.Table:
        """A run's step index (see :func:`queries.step_index`), kept for the last few
        runs asked for, so every further page costs a slice and one small read."""
        index = self._indexes.get(run_id)
        if index is None:
            if self._positions is None:
                self._positions = queries.step_positions(self.con)
            index = queries.step_index(self.con, run_id, self._positions)
            self._indexes[run_id] = index
            while len(self._indexes) > keep:
                self._indexes.popitem(last=False)
        else:
            self._indexes.move_to_end(run_id)
        return index


def _view_sql(con: Connection, view: str) -> str:
    found = con.execute(
        "SELECT sql FROM duckdb_views() WHERE view_name = ? AND NOT internal", [view]
    ).fetchone()
    if found is None:
        raise LookupError(f"no view {view!r} to materialise")
    return str(found[0]).replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1)


def appended_snapshot(previous: Snapshot, stamp: str, store: store_snapshot.Snapshot) -> Snapshot:
    """``previous`` moved on to ``store``, which only appended ``store.appended`` to the
    journals: same connection with the journal tables swapped, the new step records
    merged into the ``steps`` table (the newest record per step wins, as in the view),
    other materialised views turned back into views (rebuilt when next asked for).
    Costs the new records, not the store."""
    con, key = previous.con, LATEST_BY["steps"]
    register_journal(con, store)
    for view in previous._materialised - {"steps"}:
        con.execute(previous._views[view])
        con.execute(f"DROP TABLE _{view}_snapshot")
    new_steps = (store.appended or {}).get("steps")
    if new_steps is not None and new_steps.num_rows:
        con.register("_appended_steps", new_steps)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _appended_newest AS SELECT run_id, "
            f"{key}, max(event_no) AS newest FROM _appended_steps GROUP BY ALL"
        )
        con.execute(
            "DELETE FROM _steps_snapshot s USING _appended_newest n WHERE s.run_id = n.run_id "
            f"AND s.{key} = n.{key} AND s.event_no < n.newest"
        )
        con.execute(
            "INSERT INTO _steps_snapshot BY NAME SELECT a.* FROM _appended_steps a "
            "SEMI JOIN _appended_newest n ON a.run_id = n.run_id "
            f"AND a.{key} = n.{key} AND a.event_no = n.newest "
            "WHERE NOT EXISTS (SELECT 1 FROM _steps_snapshot s WHERE s.run_id = a.run_id "
            f"AND s.{key} = a.{key} AND s.event_no > a.event_no)"
        )
        con.execute("DROP TABLE _appended_newest")
        con.unregister("_appended_steps")
    views = {"steps": previous._views["steps"]}
    return Snapshot(previous.layout, stamp, con, previous.reader, store, {"steps"}, views)


def open_snapshot(
    layout: StoreLayout, stamp: str, reader: SnapshotReader | None = None
) -> Snapshot:
    """``connect()`` with the ``steps`` view materialised (every request reads it);
    ``reader`` (the previous snapshot's) reads only what changed since."""
    reader = reader or SnapshotReader(layout)
    return _materialised_snapshot(layout, stamp, reader, reader.read())


def _materialised_snapshot(
    layout: StoreLayout, stamp: str, reader: SnapshotReader, store: store_snapshot.Snapshot
) -> Snapshot:
    snapshot = Snapshot(layout, stamp, connect_snapshot(store), reader, store)
    snapshot.materialise("steps")
    return snapshot


def next_snapshot(layout: StoreLayout, stamp: str, previous: Snapshot | None) -> Snapshot:
    """The snapshot after ``previous`` (None: the first): only what changed is read, and
    when that is appended journal records, ``previous``'s connection is brought up to date."""
    if previous is None or previous.layout != layout:
        return open_snapshot(layout, stamp)
    store = previous.reader.read()
    same_writers = previous.source is not None and previous.source.dead_runs == store.dead_runs
    if store.appended is not None and "steps" in previous._materialised and same_writers:
        try:
            return appended_snapshot(previous, stamp, store)
        except duckdb.Error:
            pass  # the connection is in doubt: build a new one from the same records
    return _materialised_snapshot(layout, stamp, previous.reader, store)


def _writer_died(snapshot: Snapshot) -> bool:
    return snapshot.source is not None and snapshot.source.liveness_changed()


class SnapshotCache:
    """Snapshots by store folder; a store whose files changed gets a fresh one.

    Not thread-safe by itself: the server runs every query on one worker thread.
    """

    def __init__(self, max_stores: int = 8) -> None:
        self._snapshots: dict[Path, Snapshot] = {}
        self._max = max_stores
        self._lock = threading.Lock()

    def get(self, layout: StoreLayout) -> Snapshot:
        stamp = store_stamp(layout)
        with self._lock:
            current = self._snapshots.get(layout.root)
            if current is not None and current.stamp == stamp and not _writer_died(current):
                return current
        fresh = next_snapshot(layout, stamp, current)
        with self._lock:
            old = self._snapshots.pop(layout.root, None)
            self._snapshots[layout.root] = fresh
            while len(self._snapshots) > self._max:
                _, evicted = next(iter(self._snapshots.items()))
                self._snapshots.pop(evicted.layout.root).con.close()
        if old is not None and old.con is not fresh.con:
            old.con.close()
        return fresh

    def clear(self) -> None:
        with self._lock:
            for snapshot in self._snapshots.values():
                snapshot.con.close()
            self._snapshots.clear()


__all__ = ["PathError", "Snapshot", "SnapshotCache", "resolve_request_store", "store_stamp"]
