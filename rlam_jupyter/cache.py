"""Step cache: cache key → the outputs a step produced, shared by every kernel of a store.

Each engine appends its entries to its own log, ``cache/<writer_id>.jsonl`` (one
line per entry, flushed), so writers never contend and a write costs an append,
not a file creation. Readers load every log on first use and pick up what other
kernels appended since at most every :data:`REFRESH_S` seconds when a key misses.
A cache entry only says where identical outputs already are; the engine checks
that those objects still exist before serving them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any

from rlam_jupyter.store.layout import StoreLayout

REFRESH_S = 1.0
"""How stale the view of other kernels' entries may get before a miss re-reads them."""


@dataclass(frozen=True)
class CacheEntry:
    """The step that produced a result and its outputs: name → (artifact id, kind, path)."""

    step_id: str
    outputs: Mapping[str, tuple[str, str, str | None]]


class StepCache:
    """The cache of one store as seen by one writer."""

    def __init__(self, layout: StoreLayout, writer_id: str) -> None:
        self.layout = layout
        self.writer_id = writer_id
        self._entries: dict[str, CacheEntry] | None = None
        self._offsets: dict[str, int] = {}
        self._refreshed = 0.0
        self._file: IO[bytes] | None = None

    @property
    def _own_log(self) -> str:
        return f"{self.writer_id}.jsonl"

    def get(self, key: str) -> CacheEntry | None:
        entries = self._load()
        entry = entries.get(key)
        if entry is None and time.monotonic() - self._refreshed >= REFRESH_S:
            self._refresh()
            entry = entries.get(key)
        return entry

    def put(self, key: str, entry: CacheEntry) -> None:
        """Remember an entry and append it to this writer's log (a failed write only
        costs a future cache hit, so it is not an error)."""
        self._load()[key] = entry
        line = json.dumps(
            [key, entry.step_id, {k: list(v) for k, v in entry.outputs.items()}],
            separators=(",", ":"),
        ).encode()
        try:
            if self._file is None:
                self.layout.cache_dir.mkdir(parents=True, exist_ok=True)
                self._file = open(self.layout.cache_dir / self._own_log, "ab")  # noqa: SIM115
            self._file.write(line + b"\n")
            self._file.flush()
        except OSError:
            self._file = None

    def put_many(self, items: Iterable[tuple[str, CacheEntry]]) -> None:
        for key, entry in items:
            self.put(key, entry)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    # ------------------------------------------------------------ reading

    def _load(self) -> dict[str, CacheEntry]:
        if self._entries is None:
            self._entries = {}
            if self.layout.cache_dir.is_dir():
                self._refresh()
            else:
                self._refreshed = time.monotonic()
                self.put_many(_entries_from_store(self.layout).items())
                self.layout.cache_dir.mkdir(parents=True, exist_ok=True)
        return self._entries

    def _refresh(self) -> None:
        """Read what other writers appended since the last read."""
        assert self._entries is not None
        self._refreshed = time.monotonic()
        try:
            listing = list(os.scandir(self.layout.cache_dir))
        except OSError:
            return
        for item in listing:
            if not item.name.endswith(".jsonl") or item.name == self._own_log:
                continue
            offset = self._offsets.get(item.name, 0)
            try:
                if item.stat().st_size <= offset:
                    continue
                with open(item.path, "rb") as handle:
                    handle.seek(offset)
                    data = handle.read()
            except OSError:
                continue
            complete = data.rfind(b"\n") + 1  # a torn last line is read next time
            self._offsets[item.name] = offset + complete
            for row in _parse_lines(data[:complete]):
                self._entries[row[0]] = CacheEntry(
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
