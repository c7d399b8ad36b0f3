"""The run index: the in-memory index and the saved (Arrow) one answer alike."""

from __future__ import annotations

import random
from pathlib import Path

from rlam_jupyter.actions.proposal import Proposal
from rlam_jupyter.actions.registry import Registry, build_spec
from rlam_jupyter.engine import Engine
from rlam_jupyter.store.index.memory import RunIndex
from rlam_jupyter.store.index.saved import SavedRunIndex, load_saved
from rlam_jupyter.store.index.source import IndexSource


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


def test_lineage_of_a_fork_sees_the_parent_prefix_only(store: Path) -> None:
    actions = Registry()
    actions.add(build_spec(noop))
    engine = Engine(store, registry=actions)
    parent = engine.start_run("parent", seed=1)
    for i in range(10):
        engine.execute(parent, Proposal("noop", {"i": i}, {}, ("x",)))
    engine.end_run(parent)
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
