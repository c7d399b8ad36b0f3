"""Arrow batches written by a journal's writer: used only when they match the journal's
bytes exactly, and never needed for a correct read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa

from rlam_jupyter.store.catalog import connect
from rlam_jupyter.store.compaction import compact
from rlam_jupyter.store.journal import JournalWriter
from rlam_jupyter.store.journal_batches import BATCH_LINES, batch_dir, list_batches
from rlam_jupyter.store.journal_format import frame
from rlam_jupyter.store.journal_reader import JournalChunk, read_journal
from rlam_jupyter.store.layout import StoreLayout


def _record(seq: int) -> dict[str, object]:
    return {
        "run_id": "R1",
        "step_id": f"R1-{seq:06d}",
        "seq": seq,
        "action": "train",
        "status": "succeeded",
        "params": json.dumps({"C": seq / 3, "note": 'é " ✓'}),
        "seed": 2**62 + seq,
        "duration_ms": seq / 7,
        "source_text": f"m{seq} = train(C={seq})",
    }


def _write(store: Path, n: int) -> JournalWriter:
    writer = JournalWriter(StoreLayout(store), "R1")
    for seq in range(1, n + 1):
        writer.append("steps", _record(seq))
        if seq % 10 == 0:
            writer.append("edges", {"run_id": "R1", "src": f"s{seq}", "dst": "d", "type": "used"})
    return writer


def _without_batches(journal: Path, tmp_path: Path) -> JournalChunk:
    """The same journal bytes read where no batch exists."""
    alone = tmp_path / "alone" / journal.name
    alone.parent.mkdir()
    shutil.copy(journal, alone)
    chunk = read_journal(alone)
    assert chunk is not None
    return chunk


def _same_tables(a: JournalChunk, b: JournalChunk) -> None:
    assert a.tables.keys() == b.tables.keys()
    for name in a.tables:
        assert a.tables[name].equals(b.tables[name]), name
    assert (a.records, a.lines, a.end) == (b.records, b.lines, b.end)


def test_a_full_batch_and_the_closing_one_stand_for_their_lines(
    store: Path, tmp_path: Path
) -> None:
    writer = _write(store, BATCH_LINES + 200)
    assert len(list_batches(writer.path)) == 1  # the first thousand lines
    writer.close()
    assert len(list_batches(writer.path)) == 2  # and the rest, when it closed
    chunk = read_journal(writer.path)
    assert chunk is not None
    assert chunk.parsed_by == "batches"
    _same_tables(chunk, _without_batches(writer.path, tmp_path))


def test_lines_after_the_last_batch_are_parsed_from_the_journal(
    store: Path, tmp_path: Path
) -> None:
    writer = _write(store, BATCH_LINES + 5)  # one batch, then lines no batch covers yet
    chunk = read_journal(writer.path)
    assert chunk is not None
    assert chunk.parsed_by == "batches+arrow"
    _same_tables(chunk, _without_batches(writer.path, tmp_path))


def test_a_batch_of_other_lines_at_the_same_offsets_is_ignored(store: Path, tmp_path: Path) -> None:
    """Rows whose checksums are not those of the journal's lines never replace them."""
    from rlam_jupyter.store.journal_batches import _parse_lines, _write_batch, load_batch

    first = JournalWriter(StoreLayout(store), "R1")
    for seq in range(1, 21):
        first.append("steps", _record(seq))
    first.close()
    ((start, end, ours),) = list_batches(first.path)
    header_id = read_journal(first.path).header_id  # type: ignore[union-attr]
    assert load_batch(ours, header_id) is not None
    other = [frame({"_t": "steps", **_record(seq), "action": "other"}) for seq in range(1, 21)]
    ours.unlink()
    _write_batch(batch_dir(first.path), start, end, _parse_lines(other, {b"steps"}), header_id)
    chunk = read_journal(first.path)
    assert chunk is not None
    assert not chunk.parsed_by.startswith("batches")
    assert set(chunk.tables["steps"].column("action").to_pylist()) == {"train"}


def test_a_batch_whose_bytes_changed_is_ignored(store: Path, tmp_path: Path) -> None:
    writer = _write(store, 20)
    writer.close()
    ((_start, _end, batch),) = list_batches(writer.path)
    damaged = bytearray(batch.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    batch.write_bytes(bytes(damaged))
    chunk = read_journal(writer.path)
    assert chunk is not None
    assert not chunk.parsed_by.startswith("batches")
    _same_tables(chunk, _without_batches(writer.path, tmp_path))


def test_a_corrupt_line_inside_a_batch_range_is_caught(store: Path) -> None:
    writer = _write(store, 20)
    writer.close()
    data = bytearray(writer.path.read_bytes())
    position = data.index(b'"seq":7,')
    data[position + 6] = ord("9")  # a flipped digit: its checksum no longer matches
    writer.path.write_bytes(bytes(data))
    chunk = read_journal(writer.path)
    assert chunk is not None
    assert not chunk.parsed_by.startswith("batches")
    assert 7 not in chunk.tables["steps"].column("seq").to_pylist()
    assert [p[2] for p in chunk.problems] == ["checksum or JSON mismatch"]


def test_a_cut_short_write_starts_a_new_batch_at_the_right_offset(
    store: Path, tmp_path: Path
) -> None:
    writer = _write(store, 3)
    writer.close()
    with open(writer.path, "ab") as handle:
        handle.write(frame({"_t": "steps", **_record(4)})[:40])  # disk filled mid-record
    for seq in range(5, BATCH_LINES + 10):
        writer.append("steps", _record(seq))
    writer.close()
    chunk = read_journal(writer.path)
    assert chunk is not None
    assert chunk.parsed_by.startswith("batches")
    _same_tables(chunk, _without_batches(writer.path, tmp_path))
    assert len(chunk.problems) == 1


def test_compaction_removes_batches_with_their_journal(store: Path) -> None:
    writer = _write(store, 30)
    writer.append("runs", {"run_id": "R1", "name": "r", "status": "succeeded"})
    writer.close()
    assert batch_dir(writer.path).is_dir()
    before = connect(store).execute("SELECT count(*) FROM steps").fetchone()
    report = compact(store)
    assert report.closed == ["R1"]
    assert not writer.path.parent.exists()
    after = connect(store).execute("SELECT count(*) FROM steps").fetchone()
    assert before == after == (30,)


def test_batch_rows_have_the_types_a_journal_read_gives(store: Path) -> None:
    writer = _write(store, 12)
    writer.close()
    chunk = read_journal(writer.path)
    assert chunk is not None
    steps = chunk.tables["steps"]
    assert steps.schema.field("seq").type == pa.int64()
    assert steps.column("seed").to_pylist()[0] == 2**62 + 1
    assert json.loads(steps.column("params").to_pylist()[2])["note"] == 'é " ✓'
