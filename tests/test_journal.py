"""The journal: checksummed JSON lines, torn tails, refused writes, bulk reading."""

from __future__ import annotations

import errno
import json
import os
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlam_jupyter.errors import StoreWriteError
from rlam_jupyter.store.catalog import connect
from rlam_jupyter.store.journal import JournalWriter
from rlam_jupyter.store.journal_format import decode_line, frame
from rlam_jupyter.store.journal_reader import read_journal
from rlam_jupyter.store.layout import StoreLayout


def step(run_id: str, seq: int, status: str = "succeeded") -> dict[str, object]:
    return {
        "run_id": run_id,
        "step_id": f"{run_id}-{seq:06d}",
        "seq": seq,
        "action": "noop",
        "status": status,
        "params": json.dumps({"x": seq}),
        "started_at": 1_700_000_000_000_000 + seq,
        "duration_ms": 0.5,
    }


def write_steps(store: Path, run_id: str, n: int) -> JournalWriter:
    writer = JournalWriter(StoreLayout(store), run_id)
    for seq in range(1, n + 1):
        writer.append("steps", step(run_id, seq))
    return writer


def test_every_line_is_plain_json_with_its_checksum_last() -> None:
    line = frame({"_t": "steps", "seq": 3, "error_type": None, "params": '{"a": "ü"}'})
    record = json.loads(line)
    assert line.endswith(b"\n")
    assert "error_type" not in record  # None values are left out
    head = line[: line.rindex(b',"_c"')]
    assert record["_c"] == f"{zlib.crc32(head):08x}"
    assert decode_line(line[:-1]) == {"_t": "steps", "seq": 3, "params": '{"a": "ü"}'}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8), json_values, min_size=1, max_size=6))
def test_frame_and_decode_round_trip_and_any_flipped_byte_is_caught(
    record: dict[str, object],
) -> None:
    record = {k: v for k, v in record.items() if v is not None and k != "_c"}
    record["_t"] = "steps"
    line = frame(record)[:-1]
    assert decode_line(line) == record
    for position in range(0, len(line), max(1, len(line) // 7)):
        damaged = bytearray(line)
        damaged[position] ^= 0x01
        assert decode_line(bytes(damaged)) is None


def test_header_carries_the_schema_version_and_writer(store: Path) -> None:
    writer = write_steps(store, "R1", 1)
    header = json.loads(writer.path.read_bytes().splitlines()[0])
    assert header["_t"] == "header"
    assert header["schema_version"] == 1
    assert header["writer"] == writer.writer_id
    assert header["pid"] == os.getpid()


def test_torn_tail_and_corrupt_line_are_skipped_and_reported(store: Path) -> None:
    writer = write_steps(store, "R1", 5)
    writer.close()
    lines = writer.path.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"seq":2', b'"seq":9')  # bit rot in the middle
    torn = lines[-1][: len(lines[-1]) // 2]  # the writer died mid-record
    writer.path.write_bytes(b"".join(lines[:-1]) + torn)
    con = connect(store)
    assert [r[0] for r in con.execute("SELECT seq FROM steps ORDER BY seq").fetchall()] == [
        1,
        3,
        4,
    ]
    problems = con.execute("SELECT line, problem FROM journal_problems ORDER BY line").fetchall()
    assert problems == [
        (3, "checksum or JSON mismatch"),
        (6, "torn last record (writer stopped mid-write)"),
    ]


def test_a_corrupt_checksum_field_is_skipped_and_reported(store: Path) -> None:
    """Bit rot inside the checksum itself (not a hex digit any more, or the wrong one)."""
    writer = write_steps(store, "R1", 4)
    writer.close()
    lines = writer.path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1][:-5] + b":" + lines[1][-4:]  # a digit turned into ':'
    lines[3] = lines[3][:-4] + (b"0" if lines[3][-4:-3] != b"0" else b"1") + lines[3][-3:]
    writer.path.write_bytes(b"".join(lines))
    con = connect(store)
    assert con.execute("SELECT seq FROM steps ORDER BY seq").fetchall() == [(2,), (4,)]
    problems = con.execute("SELECT line, problem FROM journal_problems ORDER BY line").fetchall()
    assert problems == [(2, "checksum or JSON mismatch"), (4, "checksum or JSON mismatch")]


def test_first_format_lines_still_read(store: Path) -> None:
    """Journals written before the checksum moved into the JSON (``<crc> <json>``)."""
    folder = store / "journal" / "OLD"
    folder.mkdir(parents=True)
    lines = []
    for record in (
        {"_t": "header", "schema_version": 1, "run_id": "OLD"},
        {"_t": "runs", "run_id": "OLD", "name": "old", "status": "open", "event_no": 1},
        {**step("OLD", 1), "_t": "steps", "event_no": 2},
    ):
        payload = json.dumps(record).encode()
        lines.append(b"%08x " % zlib.crc32(payload) + payload + b"\n")
    (folder / "W.jsonl").write_bytes(b"".join(lines))
    new = JournalWriter(StoreLayout(store), "OLD")
    new.append("steps", step("OLD", 2))
    con = connect(store)
    assert con.execute("SELECT seq FROM steps ORDER BY seq").fetchall() == [(1,), (2,)]
    assert con.execute("SELECT name FROM runs").fetchall() == [("old",)]


def test_bulk_reader_resumes_at_an_offset_and_tells_files_apart(store: Path) -> None:
    writer = write_steps(store, "R1", 3)
    first = read_journal(writer.path)
    assert first is not None
    assert (first.records, first.lines) == (3, 4)
    writer.append("steps", step("R1", 4))
    rest = read_journal(writer.path, first.end, first.lines + 1)
    assert rest is not None
    assert rest.tables["steps"].column("seq").to_pylist() == [4]
    assert rest.header_id == first.header_id
    other = write_steps(store, "R1", 1)
    again = read_journal(other.path)
    assert again is not None
    assert again.header_id != first.header_id


def test_a_value_of_the_wrong_type_costs_only_its_record(store: Path) -> None:
    writer = write_steps(store, "R1", 2)
    writer.append("steps", {**step("R1", 3), "seq": "three"})
    writer.append("steps", step("R1", 4))
    con = connect(store)
    assert con.execute("SELECT seq FROM steps ORDER BY seq").fetchall() == [(1,), (2,), (4,)]
    (problem,) = con.execute("SELECT problem FROM journal_problems").fetchall()
    assert "bad value" in problem[0]


def test_refused_write_keeps_the_record_and_writes_it_later(store: Path, tmp_path: Path) -> None:
    """/dev/full refuses every write with ENOSPC, for root too: a real full disk."""
    with (
        pytest.raises(OSError, match="No space left") as full,
        open("/dev/full", "wb", buffering=0) as device,
    ):
        device.write(b"x")
    assert full.value.errno == errno.ENOSPC
    writer = write_steps(store, "R1", 1)
    writer.close()
    real = tmp_path / "aside.jsonl"
    writer.path.rename(real)
    writer.path.symlink_to("/dev/full")
    with pytest.raises(StoreWriteError, match=r"No space left on device.*run the cell again"):
        writer.append("steps", step("R1", 2))  # refused: the caller will not run the step
    assert writer.unwritten == []
    with writer.holding_failures():
        writer.append("steps", step("R1", 3))  # a step that ran: queued, not raised
        writer.append("steps", step("R1", 4))
    assert [r["seq"] for r in writer.unwritten] == [3, 4]
    assert "2 trace record(s) of run R1 are pending" in writer.pending_notes()[0]
    with pytest.raises(StoreWriteError, match="2 trace record"):
        writer.raise_if_pending()
    assert writer.retry_unwritten() == 2  # still full
    writer.path.unlink()
    real.rename(writer.path)
    assert writer.retry_unwritten() == 0
    assert writer.pending_notes() == []
    con = connect(store)
    assert con.execute("SELECT seq FROM steps ORDER BY seq").fetchall() == [(1,), (3,), (4,)]


def test_a_write_cut_short_does_not_swallow_the_next_record(store: Path) -> None:
    writer = write_steps(store, "R1", 1)
    writer.close()
    with open(writer.path, "ab") as handle:
        handle.write(frame({"_t": "steps", **step("R1", 2)})[:40])  # disk filled mid-record
    writer.append("steps", step("R1", 3))
    con = connect(store)
    assert con.execute("SELECT seq FROM steps ORDER BY seq").fetchall() == [(1,), (3,)]
    assert con.execute("SELECT problem FROM journal_problems").fetchall() == [
        ("checksum or JSON mismatch",)
    ]


def test_lines_that_do_not_end_with_their_kind_still_read(store: Path) -> None:
    """The bulk reader picks columns by the kinds at the lines' ends; a line that does
    not say its kind there (an earlier writer) makes it read every column."""
    folder = store / "journal" / "R2"
    folder.mkdir(parents=True)

    def kind_first(record: dict[str, object]) -> bytes:
        body = json.dumps(record, separators=(",", ":")).encode()[:-1]
        return body + b',"_c":"%08x"}\n' % zlib.crc32(body)

    (folder / "w.jsonl").write_bytes(
        kind_first({"_t": "header", "schema_version": 1})
        + kind_first({"_t": "runs", "run_id": "R2", "name": "early", "event_no": 1})
        + kind_first({"_t": "steps", **step("R2", 1), "event_no": 2})
        + frame({"_t": "edges", "run_id": "R2", "src": "a", "dst": "b", "type": "used"})
    )
    con = connect(store)
    assert con.execute("SELECT name FROM runs").fetchall() == [("early",)]
    assert con.execute("SELECT seq, status FROM steps").fetchall() == [(1, "succeeded")]
    assert con.execute("SELECT type FROM edges").fetchall() == [("used",)]


def _rich_steps(store: Path, n: int) -> JournalWriter:
    """Steps with every kind of value the engine writes: text with quotes and non-ASCII,
    JSON in strings, floats, big ints, booleans via artifacts, nulls left out."""
    writer = write_steps(store, "R1", 0)
    for seq in range(1, n + 1):
        writer.append(
            "steps",
            {
                **step("R1", seq),
                "source_text": f'm{seq} = train(C={seq / 7}, note="é \\" ✓")',
                "seed": 2**62 + seq,
                "error_message": None if seq % 2 else "line\nbreak",
            },
        )
        writer.append("artifacts", {"artifact_id": f"a{seq}", "run_id": "R1", "restorable": True})
    return writer


def test_whole_files_parsed_by_duckdb_equal_what_arrow_parses(store: Path) -> None:
    from rlam_jupyter.store.journal_reader import parse_journal

    writer = _rich_steps(store, 50)
    data = writer.path.read_bytes()
    head = data[: data.index(b"\n") + 1]
    fast = read_journal(writer.path)  # whole file, every line intact: DuckDB
    arrow = parse_journal(store / "elsewhere.jsonl", head, data)  # no such file: Arrow
    assert fast is not None
    assert (fast.parsed_by, arrow.parsed_by) == ("duckdb", "arrow")
    assert fast.records == arrow.records == 100
    for name in ("steps", "artifacts"):
        assert fast.tables[name].equals(arrow.tables[name]), name


def test_lines_appended_after_the_check_are_left_for_next_time(store: Path) -> None:
    """DuckDB reads the file again: rows beyond the checked bytes are not taken in."""
    from rlam_jupyter.store.journal_reader import parse_journal

    writer = write_steps(store, "R1", 3)
    data = writer.path.read_bytes()
    writer.append("steps", step("R1", 4))
    writer.append("steps", step("R1", 5))
    head = data[: data.index(b"\n") + 1]
    chunk = parse_journal(writer.path, head, data)
    assert chunk.parsed_by == "duckdb"
    assert chunk.tables["steps"].column("seq").to_pylist() == [1, 2, 3]
    assert chunk.end == len(data)


def test_a_file_replaced_since_it_was_checked_is_parsed_from_the_checked_bytes(
    store: Path,
) -> None:
    from rlam_jupyter.store.journal_reader import parse_journal

    writer = write_steps(store, "R1", 3)
    data = writer.path.read_bytes()
    head = data[: data.index(b"\n") + 1]
    writer.path.unlink()  # the writer never closed it: no batch of it was written
    replaced = JournalWriter(StoreLayout(store), "R1", writer_id=writer.writer_id)
    for seq in (7, 8, 9):
        replaced.append("steps", step("R1", seq))
    chunk = parse_journal(writer.path, head, data)
    assert chunk.parsed_by == "arrow"  # the rows DuckDB read carry other checksums
    assert chunk.tables["steps"].column("seq").to_pylist() == [1, 2, 3]
