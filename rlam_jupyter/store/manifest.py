"""Compaction manifests: which Parquet parts hold a run, and which journal bytes they cover.

One small JSON file per compacted run, ``parquet/_manifests/<run_id>.json``,
replaced atomically (write a temp file, rename). Readers use exactly the parts a
manifest lists (never a directory glob, so a half-written part is invisible) and
skip the journal bytes it covers, so a record is seen once whether it still sits in
a journal, in Parquet, or briefly in both. Parts are immutable and never deleted
by compaction, so a reader holding an older manifest still finds every file it names.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlam_jupyter.store.atomic import write_atomically
from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.store.schema import SCHEMA_VERSION

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: compactions are not serialised
    fcntl = None  # type: ignore[assignment]


def manifest_dir(layout: StoreLayout) -> Path:
    return layout.parquet_dir / "_manifests"


def manifest_path(layout: StoreLayout, run_id: str) -> Path:
    return manifest_dir(layout) / f"{run_id}.json"


@dataclass(frozen=True)
class Coverage:
    """How much of one journal file is in Parquet: bytes ``[0, offset)``, ``lines`` lines."""

    header_id: str | None
    offset: int
    lines: int
    records: int


@dataclass
class Manifest:
    """What compaction published for one run."""

    run_id: str
    generation: int = 0
    schema_version: int = SCHEMA_VERSION
    closed: bool = False
    parts: dict[str, list[str]] = field(default_factory=dict)
    """Table → store-relative paths of its Parquet parts for this run."""
    journals: dict[str, Coverage] = field(default_factory=dict)
    """Journal file name → the part of it the parts cover."""
    problems: list[tuple[str, int, str]] = field(default_factory=list)
    """Problems found in journals that were removed after compaction (kept for reports)."""
    rows: dict[str, int] = field(default_factory=dict)

    def covered(self, name: str, header_id: str | None) -> Coverage | None:
        """The coverage of journal file ``name``, if it is the same file (same header)."""
        coverage = self.journals.get(name)
        if coverage is None or coverage.header_id != header_id:
            return None
        return coverage

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "run_id": self.run_id,
            "generation": self.generation,
            "closed": self.closed,
            "parts": self.parts,
            "journals": {
                name: [c.header_id, c.offset, c.lines, c.records]
                for name, c in self.journals.items()
            },
            "problems": [list(p) for p in self.problems],
            "rows": self.rows,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            run_id=str(data["run_id"]),
            generation=int(data.get("generation", 0)),
            schema_version=int(data.get("schema_version", 0)),
            closed=bool(data.get("closed", False)),
            parts={str(k): [str(p) for p in v] for k, v in dict(data.get("parts", {})).items()},
            journals={
                str(name): Coverage(v[0], int(v[1]), int(v[2]), int(v[3]))
                for name, v in dict(data.get("journals", {})).items()
            },
            problems=[(str(p[0]), int(p[1]), str(p[2])) for p in data.get("problems", [])],
            rows={str(k): int(v) for k, v in dict(data.get("rows", {})).items()},
        )


def load_manifest(layout: StoreLayout, run_id: str) -> Manifest | None:
    try:
        data = manifest_path(layout, run_id).read_bytes()
    except FileNotFoundError:
        return None
    return Manifest.from_json(json.loads(data))


def load_manifests(layout: StoreLayout) -> dict[str, Manifest]:
    """Every published manifest, by run id."""
    folder = manifest_dir(layout)
    if not folder.is_dir():
        return {}
    manifests: dict[str, Manifest] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if not entry.name.endswith(".json") or entry.name.startswith("."):
                continue
            try:
                with open(entry.path, "rb") as handle:
                    manifest = Manifest.from_json(json.loads(handle.read()))
            except FileNotFoundError:
                continue
            manifests[manifest.run_id] = manifest
    return manifests


def publish(layout: StoreLayout, manifest: Manifest, durable: bool = True) -> None:
    """Atomically replace the run's manifest (the moment new parts become visible)."""
    data = json.dumps(manifest.to_json(), separators=(",", ":")).encode()
    write_atomically(manifest_path(layout, manifest.run_id), data, durable=durable)


@contextlib.contextmanager
def run_lock(layout: StoreLayout, run_id: str, wait: bool = True) -> Iterator[bool]:
    """Hold the compaction lock of one run; yields False if ``wait`` is off and it is busy.

    Only compactions take it; writers and readers never do."""
    folder = manifest_dir(layout)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f".{run_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is None:
            yield True
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
