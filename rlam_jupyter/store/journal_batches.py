"""Arrow batches of a journal: its writer's own parse of the lines it just wrote.

The journal (JSON Lines) stays the source of truth. Every :data:`BATCH_LINES` lines, and
when it closes, a writer parses the lines it wrote since its last batch with Arrow's JSON
reader and saves the rows as an Arrow IPC file beside the journal::

    journal/<run>/<writer>.batches/<first byte>-<byte after last line>-<blake3>.arrow

Parsing a thousand lines that were just written costs a few milliseconds spread over the
steps that wrote them; reading the batch later costs next to nothing, which is what
makes compaction and the catalog fast on large journals. A reader still checks every
journal line's checksum, and uses a batch instead of parsing lines only when those lines
are intact and the batch (its bytes matching the blake3 in its name) has one row per line
carrying exactly that line's checksum; so a batch never stands for other bytes, and a
missing, partial or mismatched batch just means those lines are parsed as before.
Batches are derived data: written atomically, never uploaded, removed with their journal.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path
from typing import Any

import blake3
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.json as pa_json

from rlam_jupyter.store.atomic import write_atomically
from rlam_jupyter.store.journal_format import parse_options

BATCH_LINES = 1000
CRC_COLUMN = "_crc"
_NAME = re.compile(r"^(\d{16})-(\d{16})-([0-9a-f]{32})\.arrow$")
_HEADER_KEY = b"rlam.journal_header"


def batch_dir(journal: Path) -> Path:
    return journal.with_suffix(".batches")


class BatchBuffer:
    """The lines one writer wrote since its last batch, with where they start."""

    def __init__(self, journal: Path) -> None:
        self.journal = journal
        self.header_id: str | None = None
        self.lines: list[bytes] = []
        self.kinds: set[bytes] = set()
        self.start = 0
        self.end = 0

    def add(self, kind: str, line: bytes, offset: int) -> None:
        """Remember ``line``, written at byte ``offset``; writes a batch when it is full."""
        if self.lines and offset != self.end:
            self.reset()  # a gap (a failed write was fixed up): start a new batch here
        if not self.lines:
            self.start = offset
        self.lines.append(line)
        self.kinds.add(kind.encode())
        self.end = offset + len(line)
        if len(self.lines) >= BATCH_LINES:
            self.flush()

    def reset(self) -> None:
        self.lines, self.kinds = [], set()

    def flush(self) -> None:
        """Write the pending lines as a batch (best effort: a batch is only a shortcut)."""
        if not self.lines or self.header_id is None:
            self.reset()
            return
        try:
            table = _parse_lines(self.lines, self.kinds)
            if table is not None:
                _write_batch(batch_dir(self.journal), self.start, self.end, table, self.header_id)
        except OSError:
            pass
        finally:
            self.reset()


def _parse_lines(lines: list[bytes], kinds: set[bytes]) -> Any:
    """The lines parsed exactly as a reader of the journal would, plus their checksums."""
    try:
        table = pa_json.read_json(
            pa.BufferReader(b"".join(lines)),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=1 << 22),
            parse_options=parse_options(kinds),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None  # a value the bulk reader refuses: readers decode these lines one by one
    if table.num_rows != len(lines):
        return None
    crcs = pa.array([int(line[-11:-3], 16) for line in lines], type=pa.uint32())
    return table.append_column(CRC_COLUMN, crcs)


def _write_batch(folder: Path, start: int, end: int, table: Any, header_id: str) -> None:
    schema = table.schema.with_metadata({_HEADER_KEY: header_id.encode()})
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, schema) as writer:
        writer.write_table(table.replace_schema_metadata(schema.metadata))
    data = sink.getvalue()
    write_atomically(folder / f"{start:016d}-{end:016d}-{_digest(data)}.arrow", data)


def _digest(data: Any) -> str:
    return str(blake3.blake3(data).hexdigest(length=16))


def list_batches(journal: Path) -> list[tuple[int, int, Path]]:
    """The batches of ``journal`` as (first byte, byte after the last line, file), in order."""
    try:
        names = os.listdir(batch_dir(journal))
    except OSError:
        return []
    found = []
    for name in names:
        match = _NAME.match(name)
        if match:
            found.append((int(match.group(1)), int(match.group(2)), batch_dir(journal) / name))
    return sorted(found)


def load_batch(path: Path, header_id: str | None) -> Any:
    """A batch's rows, or None when it is unreadable, its bytes do not match the blake3
    in its name, or it belongs to another file of the same name (another header)."""
    match = _NAME.match(path.name)
    try:
        data = pa.memory_map(str(path)).read_buffer()
        if match is None or _digest(data) != match.group(3):
            return None
        table = ipc.open_file(data).read_all()
    except (OSError, pa.ArrowInvalid):
        return None
    metadata = table.schema.metadata or {}
    if header_id is None or metadata.get(_HEADER_KEY) != header_id.encode():
        return None
    return table.replace_schema_metadata(None)


def remove_batches(journal: Path) -> None:
    with contextlib.suppress(OSError):
        shutil.rmtree(batch_dir(journal))
