"""export_parquet: the trace tables as Parquet files other tools read without rlam."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from rlam_process import rlam_output

import rlam_jupyter
from rlam_jupyter.actions.proposal import Proposal
from rlam_jupyter.actions.registry import Registry, build_spec
from rlam_jupyter.engine import Engine
from rlam_jupyter.store.compaction import compact


def square(x: int) -> int:
    """x squared."""
    return x * x


@pytest.fixture
def recorded(store: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two runs: one compacted to Parquet, one still open in its journal."""
    monkeypatch.setenv("RLAM_AUTO_COMPACT", "0")
    actions = Registry()
    actions.add(build_spec(square))
    engine = Engine(store, registry=actions)
    closed = engine.start_run("closed", seed=1)
    for i in range(3):
        engine.execute(closed, Proposal("square", {"x": i}, targets=(f"s{i}",)))
    engine.end_run(closed)
    compact(store)
    still_open = engine.start_run("open", seed=2)
    engine.execute(still_open, Proposal("square", {"x": 9}))
    return store


def test_export_writes_every_table_any_tool_reads(recorded: Path, tmp_path: Path) -> None:
    dest = tmp_path / "export"
    summary = rlam_jupyter.export_parquet(dest, store=recorded, events=True)
    assert summary["tables"] == {
        "runs": 2,
        "steps": 4,
        "step_events": 8,
        "artifacts": 4,
        "edges": 4,
        "environments": 2,
        "llm_calls": 0,
        "approvals": 0,
        "actions": 2,  # each run records the source of the action version it used
    }
    steps = pd.read_parquet(dest / "steps.parquet")
    assert sorted(steps["seq"]) == [1, 1, 2, 3]  # newest state of each step, both runs
    assert set(steps["status"]) == {"succeeded"}
    assert str(steps["started_at"].dtype).startswith("datetime64")
    for table in summary["tables"]:
        metadata = pq.read_schema(dest / f"{table}.parquet").metadata
        assert metadata[b"rlam.schema_version"] == b"1"
        assert metadata[b"rlam.table"] == table.encode()
    assert not list(dest.glob(".tmp-*"))


def test_rlam_export_parquet_command(recorded: Path, tmp_path: Path) -> None:
    dest = tmp_path / "cli-export"
    out = rlam_output("export-parquet", str(dest), "--store", str(recorded))
    assert "steps" in out
    assert pq.read_table(dest / "runs.parquet").num_rows == 2
    assert not (dest / "step_events.parquet").exists()  # only with --events
