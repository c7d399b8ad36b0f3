"""Compaction into per-run Parquet: same rows before and after, crash-safe, race-free."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from double_action import double_registry
from rlam_process import rlam_output

from rlam_jupyter.actions.proposal import Proposal
from rlam_jupyter.engine import Engine, Run
from rlam_jupyter.errors import StoreReadError
from rlam_jupyter.store import compaction, snapshot
from rlam_jupyter.store.catalog import connect
from rlam_jupyter.store.compaction import compact
from rlam_jupyter.store.journal import JournalWriter
from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.store.manifest import load_manifest


def run_steps(engine: Engine, n: int, name: str = "r", end: bool = True) -> Run:
    run = engine.start_run(name, seed=3)
    for i in range(n):
        assert engine.execute(run, Proposal("double", {"x": i}), use_cache=False).ok
    if end:
        engine.end_run(run)
    return run


def everything(store: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every view, sorted: what a reader can see."""
    con = connect(store)
    views = ["runs", "steps", "step_events", "artifacts", "edges", "environments"]
    return {v: sorted(con.execute(f"SELECT * FROM {v}").fetchall(), key=repr) for v in views}


def journals(store: Path) -> list[Path]:
    return sorted((store / "journal").glob("*/*.jsonl"))


def test_closed_runs_move_to_parquet_and_read_the_same(engine: Engine, store: Path) -> None:
    first = run_steps(engine, 4, "a")
    second = run_steps(engine, 3, "b")
    before = everything(store)
    report = compact(store)
    assert sorted(report.closed) == sorted([first.run_id, second.run_id])
    assert journals(store) == []
    assert everything(store) == before
    part = store / load_manifest(StoreLayout(store), first.run_id).parts["steps"][0]  # type: ignore[union-attr]
    assert part.parent.name == f"run_id={first.run_id}"
    metadata = pq.read_schema(part).metadata
    assert metadata[b"rlam.schema_version"] == b"1"
    assert pq.ParquetFile(part).metadata.row_group(0).column(0).compression == "ZSTD"
    assert compact(store).parts == 0  # nothing new: nothing written


def test_a_query_for_one_run_opens_only_that_runs_files(engine: Engine, store: Path) -> None:
    runs = [run_steps(engine, 2, f"r{i}") for i in range(3)]
    compact(store)
    plan = "\n".join(
        str(row[1])
        for row in connect(store)
        .execute("EXPLAIN SELECT * FROM steps WHERE run_id = ?", [runs[1].run_id])
        .fetchall()
    )
    assert "Scanning Files: 1/3" in plan


def test_open_run_compacts_up_to_now_and_keeps_writing(engine: Engine, store: Path) -> None:
    run = run_steps(engine, 3, end=False)
    report = compact(store)
    assert report.parts == 0  # open runs only on demand
    report = compact(store, include_open=True)
    assert report.runs == [run.run_id]
    assert report.closed == []
    assert len(journals(store)) == 1  # still being written
    for i in range(3, 5):
        engine.execute(run, Proposal("double", {"x": i}), use_cache=False)
    con = connect(store)
    assert con.execute("SELECT seq FROM steps ORDER BY seq").fetchall() == [
        (s,) for s in range(1, 6)
    ]
    assert con.execute("SELECT count(*) FROM step_events").fetchone() == (10,)
    engine.end_run(run)
    before = everything(store)
    compact(store)
    assert journals(store) == []
    assert everything(store) == before
    manifest = load_manifest(StoreLayout(store), run.run_id)
    assert manifest is not None
    assert manifest.closed
    assert len(manifest.parts["steps"]) == 2


def test_ending_a_run_compacts_it(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RLAM_AUTO_COMPACT", raising=False)
    engine = Engine(store, registry=double_registry())
    kept_open = run_steps(engine, 2, "open", end=False)
    ended = run_steps(engine, 2, "ended")
    assert [p.parent.name for p in journals(store)] == [kept_open.run_id]
    assert load_manifest(StoreLayout(store), ended.run_id) is not None
    con = connect(store)
    assert con.execute("SELECT count(*) FROM steps").fetchone() == (4,)


def test_run_end_hooks_replace_or_extend_auto_compaction(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compaction at run end is a hook of the engine: without it the journal stays, and a
    hook of one's own sees the ended run (its journal closed) before the index is saved."""
    monkeypatch.delenv("RLAM_AUTO_COMPACT", raising=False)
    engine = Engine(store, registry=double_registry())
    seen: list[tuple[str, str]] = []
    engine.on_run_end = [lambda e, run: seen.append((run.name, run.status))]
    ended = run_steps(engine, 2, "ended")
    assert seen == [("ended", "succeeded")]
    assert [p.parent.name for p in journals(store)] == [ended.run_id]  # not compacted
    assert load_manifest(StoreLayout(store), ended.run_id) is None
    assert connect(store).execute("SELECT count(*) FROM steps").fetchone() == (2,)


def test_crash_before_publishing_leaves_nothing_visible(
    engine: Engine, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_steps(engine, 3)
    before = everything(store)

    def crash(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt("killed after writing parts, before publishing")

    monkeypatch.setattr(compaction, "publish", crash)
    with pytest.raises(KeyboardInterrupt):
        compact(store)
    assert list((store / "parquet" / "steps").glob("*/part-*.parquet"))  # orphans exist
    assert everything(store) == before  # ...and nobody sees them
    monkeypatch.undo()
    monkeypatch.setenv("RLAM_AUTO_COMPACT", "0")
    compact(store)
    assert everything(store) == before
    manifest = load_manifest(StoreLayout(store), run.run_id)
    assert manifest is not None
    listed = {store / p for parts in manifest.parts.values() for p in parts}
    assert set((store / "parquet").glob("*/run_id=*/*.parquet")) == listed  # orphans gone


def test_crash_after_publishing_shows_no_duplicates(
    engine: Engine, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_steps(engine, 3)
    before = everything(store)

    def crash(*args: Any, **kwargs: Any) -> int:
        raise KeyboardInterrupt("killed after publishing, before removing journals")

    monkeypatch.setattr(compaction, "_remove_covered", crash)
    with pytest.raises(KeyboardInterrupt):
        compact(store)
    assert len(journals(store)) == 1  # journal and Parquet both hold the records
    assert everything(store) == before  # read once
    monkeypatch.undo()
    compact(store)
    assert journals(store) == []
    assert everything(store) == before


def test_reader_racing_a_compaction_sees_every_record_once(
    engine: Engine, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worst moment: a reader has read the journals, then compaction publishes and
    deletes them, then the reader reads the manifests."""
    run_steps(engine, 3, "a")
    run_steps(engine, 2, "b")
    before = everything(store)
    load = snapshot.load_manifests

    def compact_then_load(layout: StoreLayout) -> Any:
        compact(layout)
        return load(layout)

    monkeypatch.setattr(snapshot, "load_manifests", compact_then_load)
    con = connect(store)
    monkeypatch.undo()
    assert journals(store) == []
    assert con.execute("SELECT count(*), count(DISTINCT step_id) FROM steps").fetchone() == (5, 5)
    assert con.execute("SELECT count(*) FROM step_events").fetchone() == (10,)
    assert everything(store) == before


def test_journal_problems_survive_compaction(engine: Engine, store: Path) -> None:
    run = run_steps(engine, 2)
    (path,) = journals(store)
    path.write_bytes(path.read_bytes() + b'{"_t":"steps","seq"')  # torn tail
    compact(store)
    assert journals(store) == []
    problems = connect(store).execute("SELECT file, problem FROM journal_problems").fetchall()
    assert problems == [(str(path), "torn last record (writer stopped mid-write)")]
    assert load_manifest(StoreLayout(store), run.run_id) is not None


def test_a_newer_store_is_refused_with_the_upgrade_command(store: Path) -> None:
    writer = JournalWriter(StoreLayout(store), "R1")
    writer.append("runs", {"run_id": "R1", "name": "x", "status": "open"})
    writer.close()
    lines = writer.path.read_bytes().splitlines(keepends=True)
    header = json.loads(lines[0])
    header.pop("_c")
    header["schema_version"] = 99
    from rlam_jupyter.store.journal_format import frame

    writer.path.write_bytes(frame(header) + b"".join(lines[1:]))
    with pytest.raises(StoreReadError, match=r"schema 99.*pip install -U rlam-jupyter"):
        connect(store)
    with pytest.raises(StoreReadError, match="pip install -U"):
        compact(store, include_open=True)


def test_an_older_journal_without_version_reads(store: Path) -> None:
    folder = store / "journal" / "R0"
    folder.mkdir(parents=True)
    from rlam_jupyter.store.journal_format import frame

    (folder / "w.jsonl").write_bytes(
        frame({"_t": "header", "run_id": "R0"})
        + frame({"_t": "runs", "run_id": "R0", "name": "old", "status": "succeeded"})
    )
    assert connect(store).execute("SELECT name FROM runs").fetchall() == [("old",)]


def test_rlam_compact_command(engine: Engine, store: Path) -> None:
    run = run_steps(engine, 2, end=False)
    out = rlam_output("compact", "--open", "--store", str(store))
    assert "compacted 1 run(s)" in out
    assert load_manifest(StoreLayout(store), run.run_id) is not None


def test_rlam_compact_magic_and_session_close(
    shell: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rlam_jupyter.frontends.kernel import close_session, session_of

    monkeypatch.delenv("RLAM_AUTO_COMPACT", raising=False)
    session = session_of(shell)
    session.engine.registry = double_registry()
    shell.run_cell_magic("rlam", "--run nb --quiet", "a = double(x=2)")
    store = session.engine.layout.root
    capsys.readouterr()
    shell.run_line_magic("rlam", "compact --open")
    assert "compacted 1 run(s)" in capsys.readouterr().out
    assert len(journals(store)) == 1  # the run is still open
    close_session(shell)  # the kernel shuts down: open runs end and are compacted
    assert journals(store) == []
    con = connect(store)
    assert con.execute("SELECT status FROM runs").fetchall() == [("succeeded",)]
    assert con.execute("SELECT count(*) FROM step_events").fetchone() == (2,)
