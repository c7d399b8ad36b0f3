"""Content-addressed object store: recorded outputs as immutable bytes under ``objects/``.

A recorded output is a snapshot, not a live object: later in-place edits cannot
rewrite history, and every restore hands back a fresh copy. Writes are atomic
(temp file + rename) and deduplicated by hash, so concurrent kernels never clash.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

from rlam_jupyter.errors import StoreReadError
from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.values.digest import FIGURE_KIND, digest_bytes
from rlam_jupyter.values.figures import stored_digest
from rlam_jupyter.values.hashing import Canonical, hash_value, restore


class ObjectStore:
    """Objects of one store; ``relative_path`` values are what the trace records."""

    def __init__(self, layout: StoreLayout) -> None:
        self.layout = layout
        self.root = layout.objects_dir
        self.write_failures: list[str] = []
        """Objects the disk refused (the value stays in memory, recorded by hash only)."""

    @staticmethod
    def relative_path(kind: str, digest: str) -> str:
        return f"objects/{digest[:2]}/{digest}.{kind}"

    def path_of(self, relative_path: str) -> Path:
        return self.layout.root / relative_path

    def put(self, canonical: Canonical) -> str | None:
        """Store a value's payload (once); returns its store-relative path, or None if the
        value is opaque or the disk refused it (then see :meth:`take_write_failures`)."""
        if not canonical.restorable:
            return None
        relative = self.relative_path(canonical.kind, canonical.digest)
        target = self.path_of(relative)
        if target.exists():
            # A fresh mtime tells `rlam gc` the object is in use again (grace period).
            with contextlib.suppress(OSError):
                os.utime(target)
            return relative
        try:
            fd, temp = self._temp_file(target.parent)
        except OSError as exc:
            self._refused(relative, exc)
            return None
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.writelines(canonical.parts)
            os.replace(temp, target)
        except OSError as exc:
            Path(temp).unlink(missing_ok=True)
            self._refused(relative, exc)
            return None
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return relative

    def _temp_file(self, folder: Path) -> tuple[int, str]:
        """A temp file in ``folder``, creating the folder only when it is missing (a
        ``mkdir`` per write cost about 1 ms on some file systems)."""
        try:
            return tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
        except FileNotFoundError:
            folder.mkdir(parents=True, exist_ok=True)
            return tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")

    def _refused(self, relative: str, exc: OSError) -> None:
        self.write_failures.append(
            f"could not store {relative} ({exc.strerror or exc}); the value is in memory "
            "but cannot be restored from the trace later"
        )

    def take_write_failures(self) -> list[str]:
        """Messages for objects the disk refused since the last call."""
        failures, self.write_failures = self.write_failures, []
        return failures

    def exists(self, relative_path: str) -> bool:
        return self.path_of(relative_path).exists()

    def get(self, relative_path: str) -> Any:
        """A fresh copy of a stored value; raises if the object is missing."""
        path = self.path_of(relative_path)
        kind = path.suffix.lstrip(".")
        try:
            payload = path.read_bytes()
        except FileNotFoundError as exc:
            raise StoreReadError(
                f"object {relative_path} is missing from the store at {self.layout.root}; "
                "re-run the step that produced it, or import the bundle that contains it"
            ) from exc
        return restore(kind, payload)

    def verify(self, relative_path: str, expected_digest: str) -> bool:
        """True when the stored bytes still hash to the recorded digest."""
        path = self.path_of(relative_path)
        kind = path.suffix.lstrip(".")
        if kind in ("table", "series", "arrow"):
            return hash_value(self.get(relative_path)) == expected_digest
        if kind == FIGURE_KIND:
            return stored_digest(path.read_bytes()) == expected_digest
        return digest_bytes(kind, path.read_bytes()) == expected_digest
