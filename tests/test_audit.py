"""The paper's metrics, computed from real traces — and lowered when the trace is broken."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from rlam_process import run_rlam

from rlam_jupyter.actions.default_registry import registry as default_registry
from rlam_jupyter.actions.proposal import Proposal
from rlam_jupyter.actions.registry import Registry, build_spec
from rlam_jupyter.engine import Engine
from rlam_jupyter.frontends.cli import main
from rlam_jupyter.operations.agent import ScriptedProposer, run_agent
from rlam_jupyter.operations.audit import audit
from rlam_jupyter.store.journal import JournalWriter, now_us
from rlam_jupyter.store.journal_format import decode_line, frame
from rlam_jupyter.store.layout import StoreLayout

SCRIPT = {
    "steps": [
        {"action": "load_dataset", "params": {"name": "iris"}, "targets": ["data"]},
        {
            "action": "split",
            "params": {"test_size": 0.3},
            "inputs": {"data": "data"},
            "targets": ["X_train", "X_test", "y_train", "y_test"],
        },
        {
            "action": "train_model",
            "params": {"C": 0},
            "inputs": {"X": "X_train", "y": "y_train"},
            "targets": ["model"],
        },
        {
            "action": "evaluate",
            "inputs": {"model": "model", "X": "X_test", "y": "y_test"},
            "targets": ["metrics"],
        },
    ],
    "recover": {
        "train_model": [
            {
                "action": "train_model",
                "params": {"C": 1.0, "max_iter": 1000},
                "inputs": {"X": "X_train", "y": "y_train"},
                "targets": ["model"],
            }
        ]
    },
}


def agent_run(store: Path) -> str:
    proposer = ScriptedProposer(SCRIPT["steps"], SCRIPT["recover"])  # type: ignore[arg-type]
    outcome = run_agent("analyse", proposer, store=store, seed=1, name="audited")
    assert outcome.ok, outcome.reason
    return outcome.run_id


def test_a_complete_agent_run_meets_every_target(store: Path) -> None:
    run_id = agent_run(store)
    report = audit(run_id, store=store)

    assert report.trace_completeness == 1.0
    assert report.failure_visibility == 1.0
    assert report.reproducibility_success == 1.0
    assert report.ok
    (run,) = report.runs
    assert run.completeness.expected > 20  # computed from the trace, item by item
    assert run.reproducibility is not None
    assert run.reproducibility.expected == 4
    (failure,) = report.failures
    assert failure.action == "train_model"
    assert failure.status == "rejected"
    assert "greater than 0" in (failure.message or "")
    assert failure.recovered_by == f"{run_id}-000004"
    text = repr(report)
    assert "Trace Completeness" in text
    assert "recovered by" in text
    assert "Failure Visibility" in report._repr_html_()


def test_dropping_a_step_record_lowers_trace_completeness(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLAM_AUTO_COMPACT", "0")  # keep the journal as the only copy
    run_id = agent_run(store)
    (journal,) = (store / "journal" / run_id).glob("*.jsonl")
    lines = journal.read_bytes().splitlines(keepends=True)
    victim = f"{run_id}-000002"
    kept = []
    for line in lines:
        record = decode_line(line.rstrip(b"\n"))
        is_step = record is not None and record.get("_t") == "steps"
        if is_step and record["step_id"] == victim and record["status"] == "succeeded":
            continue  # drop the outcome of step 2
        kept.append(line)
    assert len(kept) == len(lines) - 1
    journal.write_bytes(b"".join(kept))

    report = audit(run_id, store=store, reproduce=False)
    assert report.trace_completeness is not None
    assert report.trace_completeness < 1.0
    assert any("step 2 (split): accepted, but no outcome" in m for m in report.missing())
    assert report.reproducibility_success is None  # not measured
    assert not report.ok

    code = main(["audit", run_id, "--store", str(store), "--no-reproduce", "--json"])
    assert code == 1


def test_removing_a_whole_step_shows_as_a_gap(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLAM_AUTO_COMPACT", "0")
    run_id = agent_run(store)
    (journal,) = (store / "journal" / run_id).glob("*.jsonl")
    victim = f"{run_id}-000003"
    kept = [
        line
        for line in journal.read_bytes().splitlines(keepends=True)
        if (decode_line(line.rstrip(b"\n")) or {}).get("step_id") != victim
    ]
    journal.write_bytes(b"".join(kept))
    report = audit(run_id, store=store, reproduce=False)
    missing = report.missing()
    assert any("step 3: no record at all" in m for m in missing)
    assert any("recovers" in m and victim in m for m in missing)
    assert any("made 1 tool call(s) but only 0 step(s)" in m for m in missing)


def test_a_failure_without_its_traceback_lowers_failure_visibility(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLAM_AUTO_COMPACT", "0")
    engine = Engine(store)
    run = engine.start_run("fails", 0)
    engine.execute(run, Proposal("load_dataset", {"name": "iris"}, targets=("data",)))
    failed = engine.execute(
        run, Proposal("select_columns", {"columns": ["nope"]}, {"data": "data"}, ("x",))
    )
    assert failed.status == "failed"
    engine.end_run(run)
    assert audit(run.run_id, store=store, reproduce=False).failure_visibility == 1.0

    (journal,) = (store / "journal" / run.run_id).glob("*.jsonl")
    out = []
    for line in journal.read_bytes().splitlines(keepends=True):
        record = decode_line(line.rstrip(b"\n"))
        if record and record.get("_t") == "steps" and record.get("status") == "failed":
            record.pop("traceback")
            line = frame(record)  # a well-formed record that lost the cause's traceback
        out.append(line)
    journal.write_bytes(b"".join(out))
    report = audit(run.run_id, store=store, reproduce=False)
    assert report.failure_visibility == 0.0
    assert any("without its type, message and traceback" in m for m in report.missing())


def test_a_run_that_failed_with_nothing_recorded_is_an_invisible_failure(store: Path) -> None:
    engine = Engine(store)
    run = engine.start_run("silent", 0)
    engine.end_run(run, "failed")
    report = audit(run.run_id, store=store, reproduce=False)
    assert report.failure_visibility == 0.0
    assert "ended 'failed' but no failure is recorded" in report.missing()[0]


def test_a_step_that_does_not_reproduce_lowers_reproducibility(store: Path) -> None:
    def drifting(n: int = 1) -> int:
        """Claims to be pure but is not: it reads the OS's randomness (which no identity
        sees; state it closes over would be seen, and the step not verified at all)."""
        return int.from_bytes(os.urandom(8), "big") + n

    registry = Registry()
    for spec in default_registry().values():
        registry.add(spec)
    registry.add(build_spec(drifting))
    engine = Engine(store, registry=registry)
    run = engine.start_run("drift", 0)
    engine.execute(run, Proposal("drifting", {"n": 1}, targets=("x",)))
    engine.execute(run, Proposal("load_dataset", {"name": "iris"}, targets=("data",)))
    engine.end_run(run)

    from rlam_jupyter.actions import registry as actions

    actions.DEFAULT.add(build_spec(drifting))  # verify finds the action by name
    try:
        report = audit(run.run_id, store=store)
    finally:
        actions.DEFAULT.remove("drifting")
    assert report.reproducibility_success == 0.5
    assert any("step 1 (drifting) does not reproduce" in m for m in report.missing())


def test_llm_errors_count_as_visible_failures(store: Path) -> None:
    from rlam_jupyter.operations.agent.openai_provider import OpenAIProposer
    from tests.fake_openai import FakeOpenAI

    with FakeOpenAI() as llm:
        llm.status(500, "boom")
        outcome = run_agent(
            "t", OpenAIProposer("m", llm.base_url, api_key="k", http_retries=0), store=store
        )
    assert outcome.status == "failed"
    report = audit(outcome.run_id, store=store)
    assert report.failure_visibility == 1.0
    (failure,) = report.failures
    assert failure.action == "llm call"
    assert failure.error_type == "http_500"


def test_audit_of_every_run_in_the_cli_and_the_magic(
    shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / ".rlam"
    agent_run(store)
    shell.run_cell_magic("rlam", "--run hand", 'data = load_dataset(name="iris")')
    report = shell.run_line_magic("rlam", "audit --no-reproduce")
    assert [r.name for r in report.runs] == ["audited", "hand"]
    assert report.ok
    capsys.readouterr()
    assert main(["audit", "--store", str(store), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["metrics"] == {
        "trace_completeness": 1.0,
        "failure_visibility": 1.0,
        "reproducibility_success": 1.0,
    }
    assert main(["audit", "no-such-run", "--store", str(store)]) == 2


NOTEBOOK_ACTIONS = '''\
import numpy as np
import pandas as pd
import rlam_jupyter as rlam

SCALE = 3.0

def _shift(x):
    return x * SCALE + 1

@rlam.action(determinism="pure", version="1")
def shifted(data: pd.DataFrame, column: str) -> pd.DataFrame:
    """Shift one column through a helper of this cell."""
    return data.assign(**{column: _shift(data[column])})

@rlam.action(determinism="seeded")
def noisy_mean(data: pd.DataFrame, column: str, rng: np.random.Generator = None) -> float:
    return float(data[column].mean() + rng.normal())
'''


def _notebook_run(folder: Path) -> Path:
    """A run of two notebook-defined actions, executed headlessly in a real kernel."""
    from notebook_cells import execute_cells

    execute_cells(
        folder,
        [
            "%load_ext rlam_jupyter",
            NOTEBOOK_ACTIONS,
            "%%rlam --run nb --seed 5 --quiet\n"
            'data = load_dataset(name="iris")\n'
            's = shifted(data=data, column="petal width (cm)")\n'
            'm = noisy_mean(data=s, column="petal width (cm)")',
        ],
    )
    return folder / ".rlam"


def test_the_cli_audit_re_executes_notebook_actions_from_their_recorded_source(
    tmp_path: Path,
) -> None:
    recorded = _notebook_run(tmp_path / "analysis")
    elsewhere = tmp_path / "elsewhere"  # a fresh folder: no notebook, no kernel, no module
    shutil.copytree(recorded, elsewhere / ".rlam")
    done = run_rlam("audit", "nb", "--json", cwd=elsewhere)
    report = json.loads(done.stdout)
    assert report["not_verified"] == []
    assert report["metrics"]["reproducibility_success"] == 1.0
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_cli_audit_names_steps_it_could_not_re_execute_and_exits_non_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLAM_AUTO_COMPACT", "0")  # the kernel's journals stay as written
    recorded = _notebook_run(tmp_path / "analysis")
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(recorded, elsewhere / ".rlam")
    for journal in (elsewhere / ".rlam" / "journal").rglob("*.jsonl"):
        # the source withheld, as in a trace recorded before sources were kept
        kept = [
            line for line in journal.read_bytes().splitlines(True) if b'"_t":"actions"' not in line
        ]
        journal.write_bytes(b"".join(kept))
    done = run_rlam("audit", "nb", "--json", cwd=elsewhere)
    report = json.loads(done.stdout)
    assert done.returncode == 1
    assert report["metrics"]["reproducibility_success"] < 1.0
    skipped = report["not_verified"]
    assert [line.split(" (")[1].split(")")[0] for line in skipped] == ["shifted", "noisy_mean"]
    assert all("not registered here" in line for line in skipped)
    allowed = run_rlam("audit", "nb", "--allow-skipped", cwd=elsewhere)
    assert allowed.returncode == 0, allowed.stdout
    assert "not verified" in allowed.stdout


def test_a_source_that_cannot_be_rebuilt_is_refused_naming_what_is_missing(
    tmp_path: Path,
) -> None:
    from notebook_cells import execute_cells

    execute_cells(
        tmp_path / "analysis",
        [
            "%load_ext rlam_jupyter\nimport numpy as np\nimport rlam_jupyter as rlam",
            "OFFSETS = np.arange(3.0)  # built by a statement, in a cell of its own",
            "@rlam.action(determinism='pure')\n"
            "def offset_sum(value: float) -> float:\n"
            "    return float((OFFSETS + value).sum())",
            "%%rlam --run nb --quiet\nt = offset_sum(value=1.0)",
        ],
    )
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "analysis" / ".rlam", elsewhere / ".rlam")
    done = run_rlam("audit", "nb", "--json", cwd=elsewhere)
    assert done.returncode == 1
    (skipped,) = json.loads(done.stdout)["not_verified"]
    assert "step 1 (offset_sum)" in skipped
    assert "`OFFSETS` (a ndarray) comes from a statement that is not a definition" in skipped


def _open_run_with_a_step_in_flight(store: Path) -> JournalWriter:
    """A run whose step 1 succeeded and step 2 was accepted and is still running (its
    writer, in this process, is left open: it holds the journal's lease)."""
    writer = JournalWriter(StoreLayout(store), "R1")
    writer.append("runs", {"run_id": "R1", "name": "far", "status": "open", "created_at": now_us()})
    for seq, status in ((1, "accepted"), (1, "succeeded"), (2, "accepted")):
        writer.append(
            "steps",
            {
                "run_id": "R1",
                "step_id": f"R1-00000{seq}",
                "seq": seq,
                "action": "make",
                "params": "{}",
                "status": status,
                "recorded_at": now_us(),
            },
        )
    return writer


def test_steps_in_flight_under_a_writer_of_unknown_fate_are_not_counted_as_complete(
    store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RLAM_AUTO_COMPACT", "0")
    writer = _open_run_with_a_step_in_flight(store)
    live = audit(store=store, reproduce=False)  # its writer lives: step 2 is just running
    assert live.trace_completeness == 1.0
    assert live.skipped() == []
    assert any("still open" in note for note in live.runs[0].notes)

    writer.close()
    lines = writer.path.read_bytes().splitlines(keepends=True)
    header = decode_line(lines[0].rstrip(b"\n"))
    assert header is not None
    assert header["_t"] == "header"
    # The journal of a kernel on another machine (a shared store): no lease, no /proc to read.
    writer.path.write_bytes(b"".join([frame({**header, "host": "another-host"}), *lines[1:]]))

    report = audit(store=store, reproduce=False)
    assert report.trace_completeness is not None
    assert report.trace_completeness < 1.0
    (skipped,) = report.skipped()
    assert skipped.startswith("far: step 2 (make): in flight")
    assert "another-host" in skipped
    assert report.missing() == []  # not a shortfall of the trace: it cannot be known yet
    assert not report.ok
    assert report.passes(allow_skipped=True)
    assert report.to_json()["not_verified"] == [skipped]
    assert "in flight" in repr(report).split("not verified")[1].splitlines()[0]

    command = ["audit", "--store", str(store), "--no-reproduce"]
    assert main(command) == 1
    assert main([*command, "--allow-skipped"]) == 0
    assert "step 2 (make): in flight" in capsys.readouterr().out
