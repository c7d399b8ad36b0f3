"""Bring a bucket's trace down into the local cache, so readers query it as a store.

Every key a writer puts is immutable except manifests (newest generation wins), so
the cache is always correct and a later sync only fetches what is new: objects and
Parquet parts once, journal segments appended to their log in offset order (a log
with a gap waits for the missing segment), manifests when their generation grew and
only after the parts they list are here. The catalog (DuckDB views, snapshot reads,
checksums) then reads the cache exactly like a local store.

Why a cache and not remote scans: a journal is hundreds of small segments, and
DuckDB's httpfs is not available for this DuckDB build, so one listing per sync plus
local reads is the simpler path (chosen, not benchmarked against scanning Parquet
over S3 through pyarrow).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlam_jupyter.store.atomic import write_atomically
from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.store.manifest import Manifest
from rlam_jupyter.store.remote.keys import parse_segment, remote_kind
from rlam_jupyter.store.remote.location import RemoteLocation
from rlam_jupyter.store.remote.uploader import Uploader, list_remote, manifest_generation


@dataclass
class PullReport:
    """What one sync fetched."""

    files: int = 0
    bytes: int = 0
    waiting: list[str] = field(default_factory=list)
    """Logs whose next segment is not in the bucket yet (a writer is mid-upload)."""


def pull(
    layout: StoreLayout,
    location: RemoteLocation,
    client: Any,
    uploader: Uploader | None = None,
    objects: bool = True,
    seen: dict[str, str] | None = None,
) -> PullReport:
    """Fetch what the bucket has and the cache lacks. ``objects=False`` skips artifact
    bytes (enough for the catalog; :func:`fetch_object` gets one when needed)."""
    report = PullReport()
    seen = seen if seen is not None else {}
    segments: dict[str, list[tuple[int, int, str]]] = {}
    manifests: list[tuple[str, int]] = []
    for name, size, etag in list_remote(client, location):
        kind = remote_kind(name)
        if kind == "segment":
            parsed = parse_segment(name)
            assert parsed is not None
            segments.setdefault(parsed[0], []).append((parsed[1], size, name))
        elif kind == "immutable":
            if name.startswith("objects/") and not objects:
                continue
            if not (layout.root / name).exists():
                _download(client, location, name, layout.root / name)
                _mark(uploader, name, size)
                report.files += 1
                report.bytes += size
        elif kind == "manifest" and seen.get(name) != etag:
            manifests.append((name, size))
            seen[name] = etag
    for log, parts in segments.items():
        _extend_log(layout, location, client, log, sorted(parts), report, uploader)
    for name, size in manifests:
        _refresh_manifest(layout, location, client, name, size, report, uploader)
    return report


def _extend_log(
    layout: StoreLayout,
    location: RemoteLocation,
    client: Any,
    log: str,
    parts: list[tuple[int, int, str]],
    report: PullReport,
    uploader: Uploader | None,
) -> None:
    path = layout.root / log
    have = path.stat().st_size if path.exists() else 0
    if have == 0 and _covered_by_manifest(layout, log) >= max(s + n for s, n, _ in parts):
        return  # compacted into Parquet here, journal removed: nothing to add
    for start, size, name in parts:
        end = start + size
        if end <= have:
            continue
        if start > have:
            report.waiting.append(log)
            return
        body = _get(client, location, name)[have - start :]
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as handle:
            handle.write(body)
        have = end
        report.files += 1
        report.bytes += len(body)
        _mark(uploader, log, have)


def _refresh_manifest(
    layout: StoreLayout,
    location: RemoteLocation,
    client: Any,
    name: str,
    size: int,
    report: PullReport,
    uploader: Uploader | None,
) -> None:
    target = layout.root / name
    local = target.read_bytes() if target.exists() else None
    body = _get(client, location, name)
    if local is not None and manifest_generation(local) >= manifest_generation(body):
        return
    manifest = Manifest.from_json(json.loads(body))
    for relative in (p for parts in manifest.parts.values() for p in parts):
        if not (layout.root / relative).exists():
            _download(client, location, relative, layout.root / relative)
    write_atomically(target, body)
    _mark(uploader, name, size)
    report.files += 1
    report.bytes += size


def fetch_object(layout: StoreLayout, location: RemoteLocation, client: Any, name: str) -> bool:
    """Download one object into the cache if the bucket has it; True when present."""
    target = layout.root / name
    if target.exists():
        return True
    try:
        _download(client, location, name, target)
    except Exception:
        return False
    return True


def _covered_by_manifest(layout: StoreLayout, log: str) -> int:
    parts = log.split("/")
    if parts[0] != "journal" or len(parts) != 3:
        return 0
    path = layout.parquet_dir / "_manifests" / f"{parts[1]}.json"
    try:
        manifest = Manifest.from_json(json.loads(path.read_bytes()))
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    coverage = manifest.journals.get(parts[2])
    return coverage.offset if coverage is not None else 0


def _mark(uploader: Uploader | None, relative: str, size: int) -> None:
    if uploader is not None:
        uploader.mark_remote(relative, size)


def _get(client: Any, location: RemoteLocation, name: str) -> bytes:
    body: bytes = client.get_object(Bucket=location.bucket, Key=location.key(name))["Body"].read()
    return body


def _download(client: Any, location: RemoteLocation, name: str, target: Path) -> None:
    write_atomically(target, _get(client, location, name))
