"""rlam gc: unreferenced objects go, referenced ones never do."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from rlam_process import rlam_output

from rlam_jupyter.actions.proposal import Proposal
from rlam_jupyter.actions.registry import Registry, build_spec
from rlam_jupyter.engine import Engine
from rlam_jupyter.store.catalog import connect
from rlam_jupyter.store.compaction import compact
from rlam_jupyter.store.gc import gc


def listing(n: int) -> list[int]:
    """The numbers below n."""
    return list(range(n))


def objects(store: Path) -> set[str]:
    return {p.relative_to(store).as_posix() for p in (store / "objects").glob("*/*")}


@pytest.fixture
def engine(store: Path) -> Engine:
    actions = Registry()
    actions.add(build_spec(listing))
    return Engine(store, registry=actions)


def referenced(store: Path) -> set[str]:
    rows = connect(store).execute("SELECT object_path FROM artifacts").fetchall()
    return {r[0] for r in rows if r[0]}


def test_gc_removes_only_what_no_run_references(engine: Engine, store: Path) -> None:
    ended = engine.start_run("ended", seed=1)
    engine.execute(ended, Proposal("listing", {"n": 3}))
    engine.end_run(ended)  # compacted: its references are in Parquet now
    still_open = engine.start_run("open", seed=1)
    engine.execute(still_open, Proposal("listing", {"n": 4}))  # references in the journal
    orphan = store / "objects" / "ab" / ("ab" + "0" * 62 + ".json")
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_text("[1, 2]")
    old = time.time() - 7200
    for path in (store / "objects").glob("*/*"):
        os.utime(path, (old, old))
    kept = referenced(store)
    assert len(kept) == 2
    assert kept < objects(store)

    preview = gc(store, dry_run=True)
    assert preview.removed == [orphan.relative_to(store).as_posix()]
    assert orphan.exists()

    report = gc(store)
    assert report.removed == preview.removed
    assert report.kept == 2
    assert objects(store) == kept
    assert gc(store).removed == []


def test_gc_keeps_recent_unreferenced_objects(engine: Engine, store: Path) -> None:
    """An output's bytes land a moment before its record: a young object may be in use."""
    run = engine.start_run("r", seed=1)
    engine.execute(run, Proposal("listing", {"n": 2}))
    fresh = store / "objects" / "cd" / ("cd" + "1" * 62 + ".json")
    fresh.parent.mkdir(parents=True, exist_ok=True)
    fresh.write_text("[]")
    report = gc(store)
    assert report.removed == []
    assert report.recent == 1
    assert fresh.exists()
    assert gc(store, grace_s=0).removed == [fresh.relative_to(store).as_posix()]


def test_reusing_an_object_makes_it_young_again(engine: Engine, store: Path) -> None:
    run = engine.start_run("r", seed=1)
    engine.execute(run, Proposal("listing", {"n": 5}))
    (path,) = (store / "objects").glob("*/*")
    old = time.time() - 7200
    os.utime(path, (old, old))
    again = engine.start_run("again", seed=1)
    engine.execute(again, Proposal("listing", {"n": 5}), use_cache=False)
    assert path.stat().st_mtime > old + 3600


def test_rlam_gc_command(engine: Engine, store: Path) -> None:
    run = engine.start_run("r", seed=1)
    engine.execute(run, Proposal("listing", {"n": 2}))
    engine.end_run(run)
    compact(store)
    out = rlam_output("gc", "--grace", "0", "--store", str(store))
    assert "removed 0 unreferenced object(s)" in out
    assert "kept 1 referenced" in out
