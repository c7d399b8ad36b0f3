"""Check every line of a journal's bytes at once: shape, checksum and record kind.

The shape of every line (braces, trailer, hex digits, kind) is checked with numpy for
all lines at once; only the CRC32 itself is a call per line. What is intact goes to the
bulk parsers of :mod:`rlam_jupyter.store.journal_reader`; the rest is decoded line by
line here, so a bad line costs only itself.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from rlam_jupyter.store.journal_format import TRAILER_HEAD, TRAILER_LEN, decode_line

_KIND_TAIL = len('"_t":"environments"')


@dataclass(frozen=True)
class LineScan:
    """What checking every line of a range of a journal found."""

    spans: list[tuple[int, int]]
    """Byte spans of intact current-format lines, to bulk-parse."""
    kinds_of: Callable[[], set[bytes]]
    """The record kinds those lines hold (``b""`` when a line does not say); worked out
    only when lines are parsed rather than taken from batches."""
    slow: list[dict[str, Any]]
    """The decoded records of lines that need the slow path (older format)."""
    ends: np.ndarray
    """Where every complete line ends (its newline)."""
    lines: int
    complete: int
    """Bytes up to just after the last complete line."""
    problems: list[tuple[str, int, str]]
    """Corrupt lines and the torn last line, as (file, line number, problem)."""
    torn: tuple[str, int, str] | None
    """The torn last line, if any (also in ``problems``)."""


def scan_lines(path: Path, data: Any, lineno: int) -> LineScan:
    """Check every line of ``data`` (bytes of ``path`` starting at line number ``lineno``).

    The shape of every line (braces, trailer, hex digits, kind) is checked with numpy
    for all lines at once; only the CRC32 itself is a call per line."""
    size = len(data)
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(raw == 0x0A)
    count = len(ends)
    complete = int(ends[-1]) + 1 if count else 0
    starts = np.empty_like(ends)
    if count:
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    shaped = _well_shaped(raw, starts, ends)
    candidates = np.flatnonzero(shaped)
    bodies_from = starts[candidates].tolist()
    bodies_to = (ends[candidates] - TRAILER_LEN).tolist()
    view = memoryview(data)
    crc = zlib.crc32
    bodies = map(view.__getitem__, map(slice, bodies_from, bodies_to))
    actual = np.fromiter(map(crc, bodies), dtype=np.uint32, count=len(candidates))
    intact = np.zeros(count, dtype=bool)
    intact[candidates] = actual == written_crcs(raw, ends[candidates])

    @cache
    def kinds_of() -> set[bytes]:
        return _kinds(data, raw, starts[intact], ends[intact])

    spans: list[tuple[int, int]] = []
    slow: list[dict[str, Any]] = []
    problems: list[tuple[str, int, str]] = []
    span_start = 0
    for index in np.flatnonzero(~intact).tolist():
        pos, end = int(starts[index]), int(ends[index])
        if pos > span_start:
            spans.append((span_start, pos))
        span_start = end + 1
        record = decode_line(view[pos:end])
        if record is None:
            problems.append((str(path), lineno + index, "checksum or JSON mismatch"))
        elif record.get("_t") != "header":
            slow.append(record)
    if complete > span_start:
        spans.append((span_start, complete))
    torn = None
    if complete < size:
        torn = (str(path), lineno + count, "torn last record (writer stopped mid-write)")
        problems.append(torn)
    return LineScan(spans, kinds_of, slow, ends, count, complete, problems, torn)


def _well_shaped(raw: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Lines that look like ``{…,"_c":"<8 hex digits>"}`` (their CRC still to check)."""
    shaped: np.ndarray = ends - starts > TRAILER_LEN
    # Positions of too-short lines are pointed at a safe place; they are already False.
    first = np.where(shaped, starts, 0)
    last = np.where(shaped, ends, TRAILER_LEN + 1)
    shaped &= raw[first] == 0x7B  # "{"
    shaped &= raw[last - 2] == 0x22  # '"'
    shaped &= raw[last - 1] == 0x7D  # "}"
    for offset, byte in enumerate(TRAILER_HEAD):
        shaped &= raw[last - TRAILER_LEN + offset] == byte
    digits = _HEX[raw[(last - 10)[:, None] + _EIGHT]]
    shaped &= (digits < 16).all(axis=1)
    return shaped


def written_crcs(raw: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The checksums the lines ending at ``ends`` carry (their digits already checked)."""
    digits = _HEX[raw[(ends - 10)[:, None] + _EIGHT]].astype(np.uint32)
    crcs: np.ndarray = (digits << _NIBBLE_SHIFTS).sum(axis=1, dtype=np.uint32)
    return crcs


def written_crc_digits(raw: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The checksum digits the lines ending at ``ends`` carry, as 8-byte strings."""
    digits: np.ndarray = raw[(ends - 10)[:, None] + _EIGHT].copy().view("S8").ravel()
    return digits


def _kinds(data: bytes, raw: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> set[bytes]:
    """The record kinds of intact lines: frame() writes the kind last,
    ``…,"_t":"steps","_c":"…"}``, so the few distinct line tails name them all."""
    tail_end = ends - TRAILER_LEN
    roomy = tail_end - _KIND_TAIL >= starts
    window = raw[(tail_end[roomy] - _KIND_TAIL)[:, None] + _KIND_WINDOW]
    # Where the last `"_t":"` starts in each window (-1: nowhere), as rfind would say.
    at = np.full(len(window), -1)
    for offset in range(_KIND_TAIL - len(_KIND_KEY) + 1):
        at[(window[:, offset : offset + len(_KIND_KEY)] == _KIND_KEY).all(axis=1)] = offset
    # Blank everything but the kind and its closing quote: the rows of a kind are equal.
    window = np.where((at + len(_KIND_KEY))[:, None] <= _KIND_WINDOW, window, 0)
    window[at < 0] = 0
    rows = np.unique(window.view(f"S{_KIND_TAIL}").ravel()).tolist() if len(window) else []
    kinds = {row.lstrip(b"\0")[:-1] for row in rows}
    # A line too short for a whole window: look at it alone (rare, tiny records).
    for a, b in zip(starts[~roomy].tolist(), tail_end[~roomy].tolist(), strict=True):
        tail = bytes(data[a:b])
        found = tail.rfind(b'"_t":"')
        kinds.add(tail[found + 6 : -1] if found >= 0 else b"")
    return kinds


_KIND_KEY = np.frombuffer(b'"_t":"', dtype=np.uint8)
_KIND_WINDOW = np.arange(_KIND_TAIL)
_HEX = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)
_HEX[np.frombuffer(b"ABCDEF", dtype=np.uint8)] = np.arange(10, 16, dtype=np.uint8)
_EIGHT = np.arange(8)
_NIBBLE_SHIFTS = np.arange(28, -1, -4, dtype=np.uint32)
