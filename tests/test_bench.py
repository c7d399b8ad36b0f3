"""``rlam bench``: the quick evaluation and comparison, through the real CLI entry point."""

from __future__ import annotations

import json
import sys

import pytest

from rlam_jupyter.frontends.cli import main
from rlam_jupyter.operations.evaluation.modes import upstream_available


def test_bench_paper_prints_the_table_and_says_how_to_add_upstream(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "rlam", None)  # as if rlam 0.1.0 were not installed
    assert main(["bench", "--only", "paper", "--n", "1"]) == 0
    out = capsys.readouterr().out
    assert "pip install rlam==0.1.0" in out
    assert "Paper evaluation (1 re-runs per mode and experiment)" in out
    for mode in ("script", "naive_lam", "rlam"):
        assert f"\n{mode} " in out
    assert "\nupstream " not in out
    assert "reproducibility" in out
    assert "trace completeness" in out


@pytest.mark.skipif(not upstream_available(), reason="needs `pip install rlam==0.1.0`")
def test_bench_upstream_emits_ratios_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--only", "upstream", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {row["measure"]: row for row in data["upstream"]["rows"]}
    noop = rows["no-op step: bookkeeping time (median)"]
    assert noop["rlam-jupyter"] > 0
    assert noop["upstream rlam 0.1.0"] > 0
    assert noop["ratio (ours/upstream)"] > 0
    realistic = data["upstream"]["raw"]["realistic"]
    assert realistic["body_ms"] > realistic["overhead_ms"] > 0
    assert realistic["content_address_ms"] > 0
    assert realistic["plain_pickle_ms"] > 0
    assert data["machine"]["cores"]


def test_bench_refuses_a_nonsense_n(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--n", "0"]) == 2
    assert "--n must be at least 1" in capsys.readouterr().err
