"""Trace stores on S3-compatible object storage (``RLAM_HOME=s3://bucket/prefix``).

A remote store is a local folder plus a bucket prefix. Writers append to the local
folder — the write-ahead buffer — and a background :class:`~.uploader.Uploader`
pushes the new bytes as immutable keys, so the notebook never waits for the network
and loses nothing when it drops. Readers (``connect``, the server API, the CLI) sync
the bucket into the same folder first (:mod:`.mirror`), then query it like any store.
One :class:`RemoteStore` per URL per process.
"""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass, field

from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.store.remote.location import RemoteLocation, is_remote, s3_client
from rlam_jupyter.store.remote.mirror import PullReport, fetch_object, pull
from rlam_jupyter.store.remote.uploader import Uploader, UploadStatus

PULL_INTERVAL_S = 1.0
"""Readers resolving the same store more often than this reuse the last sync."""


@dataclass
class RemoteStore:
    """A bucket prefix and its local buffer/cache in this process."""

    location: RemoteLocation
    layout: StoreLayout
    uploader: Uploader
    last_pull: float = 0.0
    last_pull_error: str | None = None
    _seen: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def sync(self, force: bool = False) -> PullReport | None:
        """Fetch what other writers put in the bucket; None (with a warning) when the
        service is unreachable: readers then see what the cache already holds."""
        with self._lock:
            if not force and time.monotonic() - self.last_pull < PULL_INTERVAL_S:
                return None
            try:
                report = pull(
                    self.layout, self.location, self.uploader.client, self.uploader, seen=self._seen
                )
            except Exception as exc:
                self.last_pull_error = str(exc) or type(exc).__name__
                warnings.warn(
                    f"cannot reach {self.location.url} ({self.last_pull_error}); "
                    f"reading the local copy at {self.layout.root}",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return None
            self.last_pull = time.monotonic()
            self.last_pull_error = None
            return report

    def status(self) -> UploadStatus:
        return self.uploader.status()

    def fetch_object(self, relative: str) -> bool:
        return fetch_object(self.layout, self.location, self.uploader.client, relative)


_stores: dict[str, RemoteStore] = {}
_stores_lock = threading.Lock()


def remote_store(url: str) -> RemoteStore:
    """The process's :class:`RemoteStore` for ``url`` (created, synced and its
    uploader started on first use)."""
    location = RemoteLocation.parse(url)
    with _stores_lock:
        store = _stores.get(location.url)
        if store is None:
            layout = StoreLayout(location.buffer_dir())
            layout.root.mkdir(parents=True, exist_ok=True)
            store = RemoteStore(location, layout, Uploader(layout, location, s3_client()))
            _stores[location.url] = store
            store.uploader.start()
    return store


def resolve_remote(url: str) -> StoreLayout:
    """The local layout readers and writers use for ``url``, synced from the bucket."""
    store = remote_store(url)
    store.sync()
    return store.layout


def store_for_layout(layout: StoreLayout) -> RemoteStore | None:
    """The remote store whose buffer is ``layout`` (None for a plain local store)."""
    for store in list(_stores.values()):
        if store.layout.root == layout.root:
            return store
    return None


def forget_stores() -> None:
    """Stop every uploader after a final push (tests, and a kernel switching stores)."""
    with _stores_lock:
        stores = list(_stores.values())
        _stores.clear()
    for store in stores:
        store.uploader.close(timeout=5.0)


__all__ = [
    "RemoteLocation",
    "RemoteStore",
    "UploadStatus",
    "forget_stores",
    "is_remote",
    "remote_store",
    "resolve_remote",
    "store_for_layout",
]
