"""The incremental snapshot reader: each read sees what a fresh ``connect()`` sees, and
reads only the journal bytes appended since the previous read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rlam_jupyter.actions.proposal import Proposal
from rlam_jupyter.engine import Engine, Run
from rlam_jupyter.store import snapshot
from rlam_jupyter.store.catalog import connect, connect_snapshot
from rlam_jupyter.store.compaction import compact
from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.store.snapshot import SnapshotReader

VIEWS = ["runs", "steps", "step_events", "artifacts", "edges", "environments", "journal_problems"]


def steps(engine: Engine, run: Run, start: int, n: int) -> None:
    for i in range(start, start + n):
        assert engine.execute(run, Proposal("double", {"x": i}), use_cache=False).ok


def rows(con: Any) -> dict[str, list[tuple[Any, ...]]]:
    return {v: sorted(con.execute(f"SELECT * FROM {v}").fetchall(), key=repr) for v in VIEWS}


def same_as_connect(reader: SnapshotReader, store: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Read again and check it against a fresh ``connect()``; returns the rows."""
    seen = rows(connect_snapshot(reader.read()))
    assert seen == rows(connect(store))
    return seen


def test_a_second_read_parses_only_the_appended_bytes(
    engine: Engine, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = engine.start_run("r", seed=1)
    steps(engine, run, 0, 3)
    reader = SnapshotReader(StoreLayout(store))
    same_as_connect(reader, store)
    (journal,) = sorted((store / "journal").glob("*/*.jsonl"))
    size = journal.stat().st_size
    starts: list[tuple[Path, int]] = []
    parse = snapshot.parse_journal

    def recording(path: Path, head: bytes, data: bytes, start: int, first: int) -> Any:
        starts.append((path, start))
        return parse(path, head, data, start, first)

    monkeypatch.setattr(snapshot, "parse_journal", recording)
    assert len(reader.read().journal["steps"]) == 6  # nothing changed: nothing parsed
    assert starts == []
    steps(engine, run, 3, 2)
    seen = same_as_connect(reader, store)
    assert starts[0] == (journal, size)
    assert len(seen["steps"]) == 5


def test_a_torn_tail_is_hidden_until_its_line_is_complete(engine: Engine, store: Path) -> None:
    run = engine.start_run("r", seed=1)
    steps(engine, run, 0, 2)
    reader = SnapshotReader(StoreLayout(store))
    same_as_connect(reader, store)
    (journal,) = sorted((store / "journal").glob("*/*.jsonl"))
    whole = journal.read_bytes()
    steps(engine, run, 2, 1)
    appended = journal.read_bytes()[len(whole) :]
    journal.write_bytes(whole + appended[:-40])  # the writer is mid-line
    torn = same_as_connect(reader, store)
    assert len(torn["step_events"]) == 5  # the step's last record is not complete yet
    assert [p[2] for p in torn["journal_problems"]] == [
        "torn last record (writer stopped mid-write)"
    ]
    with journal.open("ab") as handle:
        handle.write(appended[-40:])
    complete = same_as_connect(reader, store)
    assert len(complete["step_events"]) == 6
    assert complete["journal_problems"] == []


def test_compaction_between_reads_counts_every_record_once(engine: Engine, store: Path) -> None:
    run = engine.start_run("r", seed=1)
    steps(engine, run, 0, 3)
    reader = SnapshotReader(StoreLayout(store))
    same_as_connect(reader, store)
    compact(store)  # an open run: Parquet covers the journal so far, the journal stays
    steps(engine, run, 3, 2)
    assert len(same_as_connect(reader, store)["steps"]) == 5
    engine.end_run(run)
    compact(store)  # closed: its journal is deleted
    assert sorted((store / "journal").glob("*/*.jsonl")) == []
    final = same_as_connect(reader, store)
    assert len(final["steps"]) == 5
    assert reader.read().journal_files == 0


def test_a_compaction_racing_a_warm_read_counts_every_record_once(
    engine: Engine, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worst moment: the reader has read the new journal bytes, then compaction
    publishes and deletes the journals, then the reader reads the manifests."""
    run = engine.start_run("r", seed=1)
    steps(engine, run, 0, 3)
    reader = SnapshotReader(StoreLayout(store))
    same_as_connect(reader, store)
    steps(engine, run, 3, 2)
    engine.end_run(run)
    load = snapshot.load_manifests

    def compact_then_load(layout: StoreLayout) -> Any:
        compact(layout)
        return load(layout)

    monkeypatch.setattr(snapshot, "load_manifests", compact_then_load)
    con = connect_snapshot(reader.read())
    monkeypatch.undo()
    assert sorted((store / "journal").glob("*/*.jsonl")) == []
    assert con.execute("SELECT count(*), count(DISTINCT step_id) FROM steps").fetchone() == (5, 5)
    assert con.execute("SELECT count(*) FROM step_events").fetchone() == (10,)
    assert rows(con) == rows(connect(store))


def test_a_new_writer_of_the_same_run_is_picked_up(engine: Engine, store: Path) -> None:
    run = engine.start_run("r", seed=1)
    steps(engine, run, 0, 1)
    reader = SnapshotReader(StoreLayout(store))
    same_as_connect(reader, store)
    other = Engine(store, registry=engine.registry)
    second = other.start_run("s", seed=2)
    steps(other, second, 0, 2)
    assert len(same_as_connect(reader, store)["runs"]) == 2
