"""The run index: the in-memory index and the saved (Arrow) one answer alike, and every
reader of a fork sees the steps its one lineage walker finds."""

from __future__ import annotations

import random
from pathlib import Path

from rlam_jupyter.actions.proposal import Proposal
from rlam_jupyter.actions.registry import Registry, build_spec
from rlam_jupyter.engine import Engine, Run
from rlam_jupyter.operations.browse import queries
from rlam_jupyter.store.catalog import connect
from rlam_jupyter.store.index.lineage import fork_chain, fork_parents
from rlam_jupyter.store.index.memory import RunIndex
from rlam_jupyter.store.index.saved import SavedRunIndex, load_saved
from rlam_jupyter.store.index.source import IndexSource
from rlam_jupyter.store.journal import JournalWriter, now_us
from rlam_jupyter.store.layout import StoreLayout


def noop(i: int = 0) -> int:
    return i


def fail(i: int = 0) -> int:
    raise ValueError(i)


def test_saved_index_answers_like_the_in_memory_one(store: Path) -> None:
    actions = Registry()
    actions.add(build_spec(noop))
    actions.add(build_spec(fail))
    engine = Engine(store, registry=actions)
    run = engine.start_run("mixed", seed=1)
    chooser = random.Random(5)
    for i in range(300):
        name = f"n{chooser.randrange(40)}"  # names rebound at random
        action = "fail" if i % 37 == 0 else "noop"
        engine.execute(run, Proposal(action, {"i": i}, {}, (name,)))
    engine.end_run(run)
    memory = run.index
    assert isinstance(memory, RunIndex)
    saved = load_saved(engine.layout, run.run_id)
    assert isinstance(saved, SavedRunIndex)
    assert saved.steps == memory.steps
    for limit in (1, 2, 17, 150, 299, 300, 301, 10_000):
        assert sorted(saved.visible(limit), key=repr) == sorted(memory.visible(limit), key=repr)
        assert saved.count_before(limit) == memory.count_before(limit)
        assert saved.entries_from(limit) == memory.entries_from(limit)
    assert saved.step(38) == memory.step(38)
    assert saved.step(38) is not None
    assert saved.step(38).status == "failed"  # type: ignore[union-attr]  (i = 37)
    assert saved.step(999) is None
    some = memory.steps[5].outputs["result"]
    assert saved.artifact(some) == memory.artifact(some)


def ended_parent_run(store: Path) -> tuple[Engine, Run]:
    """An engine running ``noop``, and its ended run of ten steps that each bind ``x``."""
    actions = Registry()
    actions.add(build_spec(noop))
    engine = Engine(store, registry=actions)
    parent = engine.start_run("parent", seed=1)
    for i in range(10):
        engine.execute(parent, Proposal("noop", {"i": i}, {}, ("x",)))
    engine.end_run(parent)
    return engine, parent


def test_lineage_of_a_fork_sees_the_parent_prefix_only(store: Path) -> None:
    engine, parent = ended_parent_run(store)
    child = engine.start_run("child", seed=1, parent_run_id=parent.run_id, fork_seq=4)
    engine.execute(child, Proposal("noop", {"i": 100}, {}, ("y",)))
    engine.end_run(child)
    source = IndexSource(engine.layout)  # nothing in memory: saved indexes only
    lineage = source.lineage(child.run_id)
    assert [e.seq for e in lineage.steps()] == [1, 2, 3, 4]
    assert lineage.count_before(4) == 3
    visible = lineage.bindings_before(5)
    assert visible["x"].step_id == f"{parent.run_id}-000003"  # not the parent's later steps
    assert visible["y"].step_id == f"{child.run_id}-000004"
    assert [e.seq for e in lineage.steps_after(2)] == [3, 4]


def steps_as_every_reader_sees_them(store: Path, run_id: str) -> list[list[tuple[str, int, int]]]:
    """``(run that recorded it, seq, inherited depth)`` of each step ``run_id`` sees: from the
    ``run_steps`` macro, the browser's step index, and the run index's lineage."""
    con = connect(store)
    macro = con.execute(
        "SELECT run_id, seq, inherited_depth FROM run_steps(?) ORDER BY seq", [run_id]
    ).fetchall()
    table = queries.step_index(con, run_id)
    browser = list(
        zip(
            table["run_id"].to_pylist(),
            table["seq"].to_pylist(),
            table["inherited_depth"].to_pylist(),
            strict=True,
        )
    )
    lineage = IndexSource(StoreLayout(store)).lineage(run_id)
    indexed = []
    for entry in lineage.steps():
        depth, owner = next(
            (d, index)
            for d, (index, _upto) in enumerate(lineage.links)
            if index.step(entry.seq) == entry
        )
        indexed.append((owner.run_id, entry.seq, depth))
    return [macro, browser, indexed]


def test_every_reader_of_a_fork_of_a_fork_sees_the_same_steps(store: Path) -> None:
    engine, parent = ended_parent_run(store)
    child = engine.start_run("child", seed=1, parent_run_id=parent.run_id, fork_seq=7)
    for i in range(7, 10):
        engine.execute(child, Proposal("noop", {"i": i}, {}, ("x",)))
    engine.end_run(child)
    # Forked past the parent's own fork point: the grandparent is still cut at 7.
    grandchild = engine.start_run("grandchild", seed=1, parent_run_id=child.run_id, fork_seq=9)
    for i in range(9, 11):
        engine.execute(grandchild, Proposal("noop", {"i": i}, {}, ("x",)))
    engine.end_run(grandchild)
    expected = (
        [(parent.run_id, seq, 2) for seq in range(1, 7)]
        + [(child.run_id, seq, 1) for seq in (7, 8)]
        + [(grandchild.run_id, seq, 0) for seq in (9, 10)]
    )
    assert steps_as_every_reader_sees_them(store, grandchild.run_id) == [expected] * 3


def test_a_fork_loop_in_a_corrupt_store_lists_each_run_once(store: Path) -> None:
    """Two runs naming each other as parent (no writer does that; a hand-edited or
    corrupt store can): every reader stops at the run it has already listed."""
    layout = StoreLayout(store)
    for run_id, parent, fork_seq in (("RUNA", "RUNB", 3), ("RUNB", "RUNA", 2)):
        writer = JournalWriter(layout, run_id)
        run = {"run_id": run_id, "name": run_id, "seed": 0, "created_at": now_us()}
        writer.append("runs", {**run, "parent_run_id": parent, "fork_seq": fork_seq})
        for seq in range(1, 5):
            step = {"run_id": run_id, "step_id": f"{run_id}-{seq}", "seq": seq, "action": "noop"}
            writer.append("steps", {**step, "status": "succeeded", "outputs": "{}"})
        writer.close()
    expected = sorted([("RUNB", 1, 1), ("RUNB", 2, 1)] + [("RUNA", seq, 0) for seq in range(1, 5)])
    seen = steps_as_every_reader_sees_them(store, "RUNA")
    assert [sorted(steps) for steps in seen] == [expected] * 3  # seqs 1 and 2 come twice


def test_the_lineage_walker_cuts_each_ancestor_at_the_smallest_fork_point() -> None:
    parents = fork_parents(
        [
            {"run_id": "a", "parent_run_id": None, "fork_seq": None},
            {"run_id": "b", "parent_run_id": "a", "fork_seq": 4},
            {"run_id": "c", "parent_run_id": "b", "fork_seq": 9},
            {"run_id": "d", "parent_run_id": "gone", "fork_seq": 2},
        ]
    )
    assert fork_chain("c", parents.get) == [("c", None), ("b", 9), ("a", 4)]
    assert fork_chain("a", parents.get) == [("a", None)]
    assert fork_chain("d", parents.get) == [("d", None), ("gone", 2)]  # listed, then unknown
    assert fork_chain("nobody", parents.get) == [("nobody", None)]
