"""The ``rlam`` command as scripts use it: a real subprocess, exit codes, ``--json``."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from rlam_jupyter.actions.proposal import Proposal
from rlam_jupyter.engine import Engine
from rlam_jupyter.frontends.cli import build_parser


def rlam(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("rlam")
    command = [executable] if executable else [sys.executable, "-m", "rlam_jupyter"]
    env = {k: v for k, v in os.environ.items() if k != "RLAM_HOME"}
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli") / ".rlam"
    engine = Engine(folder)
    run = engine.start_run("wine", seed=5)
    engine.execute(run, Proposal("load_dataset", {"name": "wine"}, targets=("data",)))
    engine.execute(run, Proposal("describe", {}, {"data": "data"}, ("summary",)))
    engine.end_run(run)
    return folder


@pytest.fixture(scope="module")
def bundle(store: Path) -> Path:
    out = store.parent / "wine.zip"
    done = rlam("export", "--store", str(store), "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def test_help_lists_commands_and_exit_codes() -> None:
    done = rlam("--help")
    assert done.returncode == 0
    for command in ("runs", "show", "export", "verify", "import"):
        assert command in done.stdout
    assert "Exit codes" in done.stdout
    assert rlam().returncode == 2
    assert rlam("--version").stdout.startswith("rlam-jupyter ")
    assert rlam("no-such-command").returncode == 2


def test_every_command_takes_store_and_json() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = {
        name: options
        for name, sub in commands.choices.items()
        if not {"--store", "--json"}
        <= (options := {o for a in sub._actions for o in a.option_strings})
    }
    assert missing == {}
    for name, sub in commands.choices.items():
        assert sub.description or sub.format_help().strip(), name


def test_runs_and_show(store: Path) -> None:
    done = rlam("runs", "--store", str(store), "--json")
    assert done.returncode == 0
    runs = json.loads(done.stdout)
    assert [r["name"] for r in runs] == ["wine"]
    assert runs[0]["steps"] == 2
    text = rlam("runs", "--store", str(store))
    assert "wine" in text.stdout
    shown = rlam("show", "wine", "--store", str(store), "--step", "2", "--json")
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["action"] == "describe"
    missing = rlam("show", "nope", "--store", str(store))
    assert missing.returncode == 2
    assert "no run 'nope'" in missing.stderr
    assert rlam("show", "wine", "--store", str(store), "--step", "9").returncode == 2


def test_export_is_deterministic_and_reports_json(
    store: Path, bundle: Path, tmp_path: Path
) -> None:
    again = rlam("export", "--store", str(store), "--out", str(tmp_path / "again.zip"), "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["steps"] == 2
    assert (tmp_path / "again.zip").read_bytes() == bundle.read_bytes()
    unknown = rlam(
        "export", "--store", str(store), "--runs", "nope", "--out", str(tmp_path / "x.zip")
    )
    assert unknown.returncode == 2
    assert "nope" in unknown.stderr
    assert not (tmp_path / "x.zip").exists()


def test_verify_exit_codes(bundle: Path, tmp_path: Path) -> None:
    good = rlam("verify", str(bundle))
    assert good.returncode == 0, good.stdout
    assert "verified: every check holds" in good.stdout
    assert json.loads(rlam("verify", str(bundle), "--json").stdout)["ok"] is True

    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "trace/runs.parquet":
                data = data[:-8] + b"\0" * 8
            dst.writestr(info, data)
    bad = rlam("verify", str(tampered))
    assert bad.returncode == 1
    assert "trace/runs.parquet" in bad.stdout
    assert "NOT verified" in bad.stdout
    report = json.loads(rlam("verify", str(tampered), "--json").stdout)
    assert report["ok"] is False
    assert rlam("verify", str(tmp_path / "absent.zip")).returncode == 2


@pytest.mark.parametrize("method", ["engine", "replay"])
def test_verify_reexecute(bundle: Path, method: str) -> None:
    done = rlam("verify", str(bundle), "--reexecute", "--with", method, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    outcomes = [o["outcome"] for o in report["reexecution"]]
    assert outcomes == ["identical", "identical"]
    check = next(c for c in report["checks"] if c["name"] == "re-execution")
    assert f"with {method}" in check["summary"]


def test_import_exit_codes(bundle: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    done = rlam("import", str(bundle), "--store", str(target), "--json")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["imported"]) == 1
    assert json.loads(rlam("runs", "--store", str(target), "--json").stdout)[0]["name"] == "wine"

    hostile = tmp_path / "hostile.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(hostile, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr("../../escape.txt", b"x")
    refused = rlam("import", str(hostile), "--store", str(tmp_path / "other"))
    assert refused.returncode == 1
    assert "../../escape.txt: unsafe entry name: path traversal" in refused.stderr
    assert not (tmp_path / "other").exists()
    problems = json.loads(
        rlam("import", str(hostile), "--store", str(tmp_path / "o"), "--json").stdout
    )
    assert problems["ok"] is False
    assert problems["problems"][0]["file"] == "../../escape.txt"


def test_rlam_gc_help_states_the_stores_own_grace_period() -> None:
    """``rlam gc --grace`` restates the store's default so that ``--help`` loads no DuckDB."""
    from rlam_jupyter.frontends.cli import store as store_commands
    from rlam_jupyter.store import gc

    assert store_commands.GRACE_S == gc.GRACE_S
