"""Background upload of a local store buffer to object storage.

The kernel keeps writing journals and objects locally (the write-ahead buffer), so a
step never waits for the network and nothing is lost when it drops; this thread
pushes what is new — journal segments, objects, Parquet parts, then manifests (a
manifest is uploaded only after the parts it lists) — and retries with back-off
when the service is unreachable. What has been uploaded is learnt from the bucket
listing at start, then kept in memory: a restarted kernel uploads what an earlier
one left pending, and nothing already there is sent twice.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.store.remote.keys import local_kind, parse_segment, remote_kind, segment_name
from rlam_jupyter.store.remote.location import RemoteLocation

_ORDER = {"immutable": 0, "log": 1, "manifest": 2}


@dataclass(frozen=True)
class PendingFile:
    """One local file with bytes the bucket does not have yet."""

    relative: str
    kind: str
    start: int
    """Logs: the offset the next segment starts at (0 for other kinds)."""
    end: int
    """Logs: the end of the last complete line; else the file size."""

    @property
    def bytes(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class UploadStatus:
    """What ``%rlam status`` shows about a remote store."""

    url: str
    buffer: Path
    pending_files: int
    pending_bytes: int
    uploaded_files: int
    last_error: str | None
    last_success_at: float | None

    def summary(self) -> str:
        state = (
            "all uploaded"
            if not self.pending_files
            else f"{self.pending_files} file(s), {self.pending_bytes:,} bytes pending upload"
        )
        line = f"remote store {self.url} · {state} · local buffer {self.buffer}"
        if self.last_error:
            line += f"\n  last upload failed ({self.last_error}); retrying in the background"
        return line


class Uploader:
    """Pushes one buffer's new bytes to one bucket prefix; safe to call from any thread."""

    def __init__(self, layout: StoreLayout, location: RemoteLocation, client: Any) -> None:
        self.layout = layout
        self.location = location
        self.client = client
        self._known: dict[str, int] | None = None
        """Immutable/manifest name → size uploaded; log name → bytes uploaded (contiguous)."""
        self._manifest_sizes: dict[str, tuple[int, int]] = {}
        self.foreign: set[str] = set()
        """Files the mirror brought down from the bucket: never uploaded back."""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.uploaded_files = 0
        self.last_error: str | None = None
        self.last_success_at: float | None = None

    # ------------------------------------------------------------ what is pending

    def _load_known(self) -> dict[str, int]:
        if self._known is None:
            known: dict[str, int] = {}
            segments: dict[str, list[tuple[int, int]]] = {}
            for name, size, _etag in list_remote(self.client, self.location):
                kind = remote_kind(name)
                if kind == "segment":
                    parsed = parse_segment(name)
                    assert parsed is not None
                    segments.setdefault(parsed[0], []).append((parsed[1], size))
                elif kind is not None:
                    known[name] = size
            for log, parts in segments.items():
                end = 0
                for start, size in sorted(parts):
                    if start <= end:
                        end = max(end, start + size)
                known[log] = end
            self._known = known
        return self._known

    def pending(self) -> list[PendingFile]:
        """Every local file with bytes not yet in the bucket, in upload order."""
        known = self._load_known()
        found: list[PendingFile] = []
        for relative, path in _store_files(self.layout):
            kind = local_kind(relative)
            if kind is None or relative in self.foreign:
                continue
            try:
                info = path.stat()
            except FileNotFoundError:
                continue
            if kind == "log":
                start = known.get(relative, 0)
                if info.st_size > start:
                    end = _complete_end(path, start, info.st_size)
                    if end > start:
                        found.append(PendingFile(relative, kind, start, end))
            elif kind == "immutable":
                if relative not in known:
                    found.append(PendingFile(relative, kind, 0, info.st_size))
            elif self._manifest_sizes.get(relative) != (info.st_size, info.st_mtime_ns):
                found.append(PendingFile(relative, kind, 0, info.st_size))
        found.sort(key=lambda p: _ORDER[p.kind])
        return found

    def status(self) -> UploadStatus:
        try:
            pending = self.pending()
        except Exception as exc:  # the listing itself needs the network
            self.last_error = _describe(exc)
            pending = [
                PendingFile(r, k, 0, p.stat().st_size)
                for r, p in _store_files(self.layout)
                if (k := local_kind(r)) is not None and r not in self.foreign
            ]
        return UploadStatus(
            self.location.url,
            self.layout.root,
            len(pending),
            sum(p.bytes for p in pending),
            self.uploaded_files,
            self.last_error,
            self.last_success_at,
        )

    # ------------------------------------------------------------ pushing

    def push(self) -> int:
        """Upload everything pending now; returns how many uploads were made.
        Raises on the first network error (what is left stays pending)."""
        with self._lock:
            count = 0
            try:
                for item in self.pending():
                    self._upload(item)
                    count += 1
            except Exception as exc:
                self.last_error = _describe(exc)
                raise
            self.last_error = None
            self.last_success_at = time.time()
            return count

    def _upload(self, item: PendingFile) -> None:
        path = self.layout.root / item.relative
        known = self._load_known()
        if item.kind == "log":
            with path.open("rb") as handle:
                handle.seek(item.start)
                body = handle.read(item.end - item.start)
            name = segment_name(item.relative, item.start)
            self.client.put_object(
                Bucket=self.location.bucket, Key=self.location.key(name), Body=body
            )
            known[item.relative] = item.end
        elif item.kind == "immutable":
            self.client.upload_file(
                str(path), self.location.bucket, self.location.key(item.relative)
            )
            known[item.relative] = item.end
        else:
            info = path.stat()
            body = path.read_bytes()
            key = self.location.key(item.relative)
            if item.relative not in known or manifest_generation(body) > manifest_generation(
                self.client.get_object(Bucket=self.location.bucket, Key=key)["Body"].read()
            ):
                self.client.put_object(Bucket=self.location.bucket, Key=key, Body=body)
            known[item.relative] = info.st_size
            self._manifest_sizes[item.relative] = (info.st_size, info.st_mtime_ns)
        self.uploaded_files += 1

    def mark_remote(self, relative: str, size: int) -> None:
        """The mirror wrote ``relative`` from the bucket: it is there already."""
        self.foreign.add(relative)
        if self._known is not None:
            self._known[relative] = max(self._known.get(relative, 0), size)

    # ------------------------------------------------------------ background

    def start(self, interval: float = 0.5) -> None:
        """Push in a daemon thread every ``interval`` seconds (backing off to 30 s while
        the service is unreachable); a final push is attempted when Python exits."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._loop, args=(interval,), name="rlam-uploader", daemon=True
        )
        self._thread.start()
        atexit.register(self.close)

    def wake(self) -> None:
        """Retry now instead of at the end of the back-off."""
        self._wake.set()

    def _loop(self, interval: float) -> None:
        delay = interval
        while not self._stop.is_set():
            try:
                self.push()
                delay = interval
            except Exception:
                delay = min(max(delay * 2, 1.0), 30.0)
            self._wake.wait(delay)
            self._wake.clear()

    def flush(self, timeout: float = 30.0) -> bool:
        """Push until nothing is pending or ``timeout`` passes; True when all is up."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.push()
                if not self.pending():
                    return True
            except Exception:
                pass
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
        with contextlib.suppress(Exception):
            self.flush(timeout=timeout)


def list_remote(client: Any, location: RemoteLocation) -> Iterator[tuple[str, int, str]]:
    """Every (store-relative name, size, ETag) under the location's prefix."""
    paginator = client.get_paginator("list_objects_v2")
    prefix = location.key("")
    for page in paginator.paginate(Bucket=location.bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            yield location.relative(entry["Key"]), int(entry["Size"]), str(entry.get("ETag", ""))


def _store_files(layout: StoreLayout) -> Iterator[tuple[str, Path]]:
    root = layout.root
    for top in ("objects", "parquet", "journal", "cache"):
        folder = root / top
        if not folder.is_dir():
            continue
        for dirpath, _dirs, files in os.walk(folder):
            for name in files:
                path = Path(dirpath) / name
                yield path.relative_to(root).as_posix(), path


def _complete_end(path: Path, start: int, size: int) -> int:
    """The end of the last complete line in ``[start, size)`` (a torn tail stays local)."""
    with path.open("rb") as handle:
        handle.seek(start)
        data = handle.read(size - start)
    cut = data.rfind(b"\n")
    return start + cut + 1 if cut >= 0 else start


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:199] + "…"


def manifest_generation(data: bytes) -> int:
    """The generation a manifest's JSON says (-1 when unreadable)."""
    try:
        value = json.loads(data).get("generation", 0)
        return int(value)
    except (ValueError, AttributeError, TypeError):
        return -1
