"""Zip files that are the same bytes every time, and a reader that trusts nothing it opens.

The writer sorts entries and fixes every timestamp, permission and compression
setting, so exporting the same runs twice gives a byte-identical bundle. The reader
checks the whole central directory before any byte is used: unsafe names (``../``,
absolute, drive letters, backslashes), symlinks, duplicated or case-colliding names,
encrypted or oddly compressed entries, overlapping entries, too many entries, and
sizes or compression ratios that only a zip bomb has. Entry names are never used as
paths on disk; callers map validated names to paths they build themselves.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import stat
import struct
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rlam_jupyter.operations.bundle.problems import BundleError, Problem

FIXED_DATE = (1980, 1, 1, 0, 0, 0)
"""The earliest date a zip can hold: no clock leaks into the bytes."""
_FILE_MODE = 0o100644
_DEFLATE_LEVEL = 1
"""Fast deflate: the big entries (PROV, RO-Crate) are JSON; level 6 is 3x slower for 10% less."""
_STORED_SUFFIXES = (".parquet", ".zip", ".npy")
"""Already-compressed formats are stored, not deflated again."""
_DEFLATE_MIN_BYTES = 1024
"""Smaller entries are stored: deflating them costs time and saves nothing."""
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_LOCAL_SIGNATURE = b"PK\x03\x04"
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class Limits:
    """What a bundle may contain before the reader refuses it as hostile.

    The defaults fit real analyses (an entry up to 4 GiB, 16 GiB in all); raise them
    explicitly for bigger bundles rather than switching the checks off.
    """

    max_entries: int = 500_000
    max_entry_bytes: int = 4 << 30
    max_total_bytes: int = 16 << 30
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 1 << 20
    """Ratios are only checked above this size: small files compress oddly, harmlessly."""


DEFAULT_LIMITS = Limits()


Payload = bytes | Path
"""An entry's content: bytes in memory, or a file streamed into the zip (large objects)."""


def write_deterministic_zip(path: Path, entries: Iterable[tuple[str, Payload]]) -> None:
    """Write entries sorted by name with fixed metadata, atomically (temp file + rename)."""
    ordered = sorted(entries, key=lambda item: item[0])
    names = [name for name, _ in ordered]
    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"duplicate bundle entries: {duplicated[:5]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.part")
    try:
        with zipfile.ZipFile(temp, "w", allowZip64=True) as archive:
            for name, payload in ordered:
                size = payload.stat().st_size if isinstance(payload, Path) else len(payload)
                info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
                info.create_system = 3  # unix, so the mode below is meaningful
                info.external_attr = _FILE_MODE << 16
                info.file_size = size
                if name.endswith(_STORED_SUFFIXES) or size < _DEFLATE_MIN_BYTES:
                    info.compress_type = zipfile.ZIP_STORED
                else:
                    info.compress_type = zipfile.ZIP_DEFLATED
                    # what writestr(compresslevel=...) sets; public as compress_level in 3.13
                    setattr(info, "_compresslevel", _DEFLATE_LEVEL)  # noqa: B010
                with archive.open(info, "w") as sink:
                    if isinstance(payload, Path):
                        with open(payload, "rb") as source:
                            shutil.copyfileobj(source, sink, 1 << 20)
                    else:
                        sink.write(payload)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def unsafe_name_reason(name: str) -> str | None:
    """Why an entry name could escape or confuse an extraction folder (None if it is safe)."""
    if not name:
        return "empty entry name"
    if "\x00" in name:
        return "entry name contains a NUL byte"
    if "\\" in name:
        return "entry name contains a backslash (a Windows path separator)"
    if name.startswith("/"):
        return "absolute path"
    if _DRIVE.match(name):
        return "absolute Windows path (drive letter)"
    parts = name.rstrip("/").split("/")
    if ".." in parts:
        return "path traversal ('..' component)"
    if any(part in ("", ".") for part in parts):
        return "empty or '.' path component"
    return None


class SafeArchive:
    """A zip opened for reading after its whole directory passed the safety checks.

    Raises :class:`BundleError` naming every offending entry; ``read`` and
    ``open`` only serve files that passed.
    """

    def __init__(self, path: Path, limits: Limits = DEFAULT_LIMITS) -> None:
        self.path = path
        self.limits = limits
        label = path.name
        try:
            self._zip = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise BundleError([Problem(label, f"no such file: {path}")]) from None
        except IsADirectoryError:
            raise BundleError([Problem(label, "is a folder, not a bundle zip")]) from None
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise BundleError(
                [Problem(label, f"not a readable zip archive (truncated or corrupt: {exc})")]
            ) from None
        try:
            problems = list(self._check_directory())
        except (OSError, zipfile.BadZipFile, struct.error) as exc:
            problems = [Problem(label, f"corrupt zip directory: {exc}")]
        if problems:
            self._zip.close()
            raise BundleError(problems)
        self.infos = {info.filename: info for info in self._zip.infolist() if not info.is_dir()}

    # ------------------------------------------------------------ checks

    def _check_directory(self) -> Iterator[Problem]:
        infos = self._zip.infolist()
        limits = self.limits
        if len(infos) > limits.max_entries:
            yield Problem(
                self.path.name,
                f"{len(infos)} entries, more than the limit of {limits.max_entries}",
            )
            return
        seen: dict[str, str] = {}
        total = 0
        for info in infos:
            name = info.filename
            reason = unsafe_name_reason(name)
            if reason:
                yield Problem(name, f"unsafe entry name: {reason}")
                continue
            folded = name.casefold()
            if folded in seen:
                what = (
                    "duplicated entry"
                    if seen[folded] == name
                    else (f"entry name collides with {seen[folded]!r} on case-insensitive disks")
                )
                yield Problem(name, what)
                continue
            seen[folded] = name
            mode = info.external_attr >> 16
            if info.create_system == 3 and stat.S_ISLNK(mode):
                yield Problem(name, "symbolic link entry (bundles contain regular files only)")
                continue
            if info.flag_bits & 0x1:
                yield Problem(name, "encrypted entry")
                continue
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                yield Problem(name, f"unsupported compression method {info.compress_type}")
                continue
            if info.file_size > limits.max_entry_bytes:
                yield Problem(
                    name,
                    f"declares {info.file_size:,} bytes uncompressed, more than the "
                    f"{limits.max_entry_bytes:,}-byte limit per entry (zip bomb?)",
                )
                continue
            if info.file_size > limits.ratio_floor_bytes:
                ratio = info.file_size / max(info.compress_size, 1)
                if ratio > limits.max_ratio:
                    yield Problem(
                        name,
                        f"compression ratio {ratio:,.0f}:1 exceeds the limit of "
                        f"{limits.max_ratio:.0f}:1 (zip bomb?)",
                    )
                    continue
            total += info.file_size
        if total > limits.max_total_bytes:
            yield Problem(
                self.path.name,
                f"{total:,} bytes uncompressed in all, more than the limit of "
                f"{limits.max_total_bytes:,} (zip bomb?)",
            )
        yield from self._check_overlaps(infos)

    def _check_overlaps(self, infos: list[zipfile.ZipInfo]) -> Iterator[Problem]:
        """Entries must not share bytes: overlapping entries are how a small zip expands hugely."""
        fp = self._zip.fp
        if fp is None:
            return
        directory_start = self._zip.start_dir
        spans = []
        for info in infos:
            fp.seek(info.header_offset)
            header = fp.read(_LOCAL_HEADER.size)
            if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
                yield Problem(info.filename, "local file header missing or corrupt (truncated?)")
                continue
            fields = _LOCAL_HEADER.unpack(header)
            name_len, extra_len = fields[-2], fields[-1]
            end = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
            end += info.compress_size
            spans.append((info.header_offset, end, info.filename))
        spans.sort()
        for (_, end, name), (start, _, next_name) in itertools.pairwise(spans):
            if end > start:
                yield Problem(next_name, f"overlaps entry {name!r} (possible zip bomb)")
        if spans and spans[-1][1] > directory_start:
            yield Problem(spans[-1][2], "extends into the zip directory (truncated or forged)")

    # ------------------------------------------------------------ reading

    def names(self) -> list[str]:
        return sorted(self.infos)

    def size(self, name: str) -> int:
        return self.infos[name].file_size

    def open(self, name: str) -> IO[bytes]:
        return self._zip.open(self.infos[name])

    def read(self, name: str) -> bytes:
        """The entry's bytes; raises :class:`BundleError` on a CRC or size mismatch."""
        info = self.infos[name]
        chunks = []
        size = 0
        try:
            with self._zip.open(info) as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    size += len(chunk)
                    if size > info.file_size:
                        raise BundleError([Problem(name, "more bytes than the zip declares")])
                    chunks.append(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise BundleError([Problem(name, f"corrupt entry: {exc}")]) from None
        return b"".join(chunks)

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> SafeArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
