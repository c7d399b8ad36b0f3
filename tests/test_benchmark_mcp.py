"""``benchmarks/mcp.py`` end to end with a few calls: every row is measured through real
servers (``rlam mcp`` and the bare SDK floor, over stdio and HTTP), the calls answered
as each row says (a new ``n`` runs a step, a repeated one is served from the cache), and
the extra is ours minus the floor of the same transport and protocol."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "mcp.py"


def test_the_mcp_benchmark_measures_every_row_against_its_floor(tmp_path: Path) -> None:
    quick = ["--calls", "3", "--warmup", "1", "--modes", "auto", "--results", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), *quick],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads((tmp_path / "mcp.json").read_text())
    rows = {(row["what"], row["transport"]): row for row in payload["rows"]}
    for transport in ("stdio", "http"):
        floor = rows["bare SDK server (floor)", transport]
        miss = rows["rlam mcp, new n (cache miss)", transport]
        hit = rows["rlam mcp, same n (cache hit)", transport]
        assert floor["answered"] == "text (no step)"
        assert miss["answered"] == "succeeded"
        assert hit["answered"] == "cached"
        for row in (floor, miss, hit):
            assert row["n"] == 3
            assert row["p95_ms"] >= row["p50_ms"] > 0
            assert row["protocol"] == floor["protocol"] == "2026-07-28"
        for row in (miss, hit):
            assert row["extra_p50_ms"] == pytest.approx(row["p50_ms"] - floor["p50_ms"])
            assert row["met"] == ("yes" if row["extra_p50_ms"] <= 1.0 else "no")
    in_process = [row for row in payload["rows"] if row["transport"] == "in process"]
    assert {row["answered"] for row in in_process} == {"succeeded", "cached"}
    assert all(row["p50_ms"] > 0 for row in in_process)
    assert any("target ≤ 1 ms p50" in note for note in payload["notes"])
