"""Step cache: cache key → the outputs a step produced, shared by every kernel of a store.

Entries live in append-only logs sharded by the first two hex digits of the key,
``cache/<xx>/<writer_id>.jsonl`` (one line per entry), so writers never contend, a
write is an append, and a lookup reads only its shard (1/256 of the entries) the
first time that shard is needed. Entries that other kernels append later are picked
up when a key misses, at most every :data:`REFRESH_S` seconds per shard. A cache
entry only says where identical outputs already are; the engine checks that those
objects still exist before serving them.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlam_jupyter.store.layout import StoreLayout

REFRESH_S = 1.0
"""How stale the view of other kernels' entries may get before a miss re-reads them."""


@dataclass(frozen=True)
class CacheEntry:
    """The step that produced a result and its outputs: name → (artifact id, kind, path)."""

    step_id: str
    outputs: Mapping[str, tuple[str, str, str | None]]


def _line(key: str, entry: CacheEntry) -> bytes:
    row = [key, entry.step_id, {k: list(v) for k, v in entry.outputs.items()}]
    return json.dumps(row, separators=(",", ":")).encode() + b"\n"


class StepCache:
    """The cache of one store as seen by one writer."""

    def __init__(self, layout: StoreLayout, writer_id: str) -> None:
        self.layout = layout
        self.writer_id = writer_id
        self._shards: dict[str, dict[str, CacheEntry]] = {}
        self._offsets: dict[str, int] = {}
        self._refreshed: dict[str, float] = {}
        # A store with no trace yet has no steps to migrate: skip the one-off DuckDB scan
        # (it cost 15-80 ms on the first step of every new store).
        self._checked_store = not (layout.journal_dir.exists() or layout.parquet_dir.exists())

    @property
    def _own_log(self) -> str:
        return f"{self.writer_id}.jsonl"

    def _shard_dir(self, shard: str) -> Path:
        return self.layout.cache_dir / shard

    def get(self, key: str) -> CacheEntry | None:
        shard = key[:2]
        entries = self._load(shard)
        entry = entries.get(key)
        if entry is None and time.monotonic() - self._refreshed.get(shard, 0.0) >= REFRESH_S:
            self._refresh(shard)
            entry = entries.get(key)
        return entry

    def put(self, key: str, entry: CacheEntry) -> None:
        """Remember an entry and append it to this writer's log of its shard (a failed
        write only costs a future cache hit, so it is not an error)."""
        self._load(key[:2])[key] = entry
        self._append(key[:2], [_line(key, entry)])

    def put_many(self, items: Iterable[tuple[str, CacheEntry]]) -> None:
        lines: dict[str, list[bytes]] = defaultdict(list)
        for key, entry in items:
            self._load(key[:2])[key] = entry
            lines[key[:2]].append(_line(key, entry))
        for shard, shard_lines in lines.items():
            self._append(shard, shard_lines)

    def _append(self, shard: str, lines: list[bytes]) -> None:
        folder = self._shard_dir(shard)
        try:
            try:
                fd = os.open(folder / self._own_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except FileNotFoundError:
                folder.mkdir(parents=True, exist_ok=True)
                fd = os.open(folder / self._own_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, b"".join(lines))
            finally:
                os.close(fd)
        except OSError:
            pass

    def close(self) -> None:
        """Nothing stays open between writes; kept so callers can close symmetrically."""

    # ------------------------------------------------------------ reading

    def _load(self, shard: str) -> dict[str, CacheEntry]:
        entries = self._shards.get(shard)
        if entries is None:
            self._migrate_once()
            entries = self._shards.setdefault(shard, {})
            self._refresh(shard)
        return entries

    def _migrate_once(self) -> None:
        """A store written before the cache folder existed (or imported from a bundle)
        gets its cache entries from the recorded steps, once."""
        if self._checked_store:
            return
        self._checked_store = True
        if self.layout.cache_dir.is_dir():
            return
        found = _entries_from_store(self.layout)
        self.layout.cache_dir.mkdir(parents=True, exist_ok=True)
        self.put_many(found.items())

    def _refresh(self, shard: str) -> None:
        """Read what other writers appended to a shard since the last read."""
        entries = self._shards.setdefault(shard, {})
        self._refreshed[shard] = time.monotonic()
        try:
            listing = list(os.scandir(self._shard_dir(shard)))
        except OSError:
            return
        for item in listing:
            if not item.name.endswith(".jsonl") or item.name == self._own_log:
                continue
            offset = self._offsets.get(item.path, 0)
            try:
                if item.stat().st_size <= offset:
                    continue
                with open(item.path, "rb") as handle:
                    handle.seek(offset)
                    data = handle.read()
            except OSError:
                continue
            complete = data.rfind(b"\n") + 1  # a torn last line is read next time
            self._offsets[item.path] = offset + complete
            for row in _parse_lines(data[:complete]):
                entries[row[0]] = CacheEntry(
                    row[1], {name: (v[0], v[1], v[2]) for name, v in row[2].items()}
                )


def _parse_lines(data: bytes) -> list[Any]:
    """All rows in one parse (fast); line by line, skipping bad ones, if that fails."""
    if not data:
        return []
    try:
        rows = json.loads(b"[" + data.rstrip(b"\n").replace(b"\n", b",") + b"]")
        if isinstance(rows, list) and all(_valid(r) for r in rows):
            return rows
    except ValueError:
        pass
    good = []
    for line in data.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if _valid(row):
            good.append(row)
    return good


def _valid(row: Any) -> bool:
    return (
        isinstance(row, list)
        and len(row) == 3
        and isinstance(row[0], str)
        and isinstance(row[1], str)
        and isinstance(row[2], dict)
        and all(isinstance(v, list) and len(v) == 3 for v in row[2].values())
    )


def _entries_from_store(layout: StoreLayout) -> dict[str, CacheEntry]:
    """Cache entries of every succeeded step in the journals and Parquet files: for
    stores written before the cache folder existed, and imported bundles."""
    if not (layout.journal_dir.is_dir() or layout.parquet_dir.is_dir()):
        return {}
    # lazy: DuckDB, for old stores only: %load_ext and running steps load none
    from rlam_jupyter.store.catalog import connect

    con = connect(layout)
    try:
        rows = con.execute(
            """
            SELECT s.cache_key, s.step_id, a.name, a.artifact_id, a.kind, a.object_path
            FROM steps s JOIN artifacts a ON a.step_id = s.step_id
            WHERE s.status = 'succeeded' AND s.cache_key IS NOT NULL
              AND coalesce(s.determinism, '') <> 'external'
            ORDER BY s.step_id
            """
        ).fetchall()
    finally:
        con.close()
    found: dict[str, tuple[str, dict[str, tuple[str, str, str | None]]]] = {}
    for key, step_id, name, artifact_id, kind, path in rows:
        step, outputs = found.setdefault(key, (step_id, {}))
        if step == step_id:
            outputs[name] = (artifact_id, kind, path)
    return {
        key: CacheEntry(step, outputs)
        for key, (step, outputs) in found.items()
        if all(path is not None for _, _, path in outputs.values())
    }
