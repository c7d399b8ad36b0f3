"""``rlam_export`` on a real ``rlam mcp`` subprocess, driven by the SDK's stdio client:
the bundle it writes verifies (and re-executes) with ``rlam verify`` in a fresh process;
it answers where the bundle is, its hash and what it holds; it never replaces a file
unless asked, and then only an earlier bundle."""

from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp_types import CallToolResult

from tests.rlam_process import run_rlam

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("load_dataset", {"name": "iris", "_outputs": ["data"]}),
    ("split", {"data": "data", "test_size": 0.3, "_outputs": ["X_train", "X_test", "y", "t"]}),
    ("rlam_export", {"path": "out/bundle.zip"}),
    ("rlam_export", {"path": "out/bundle.zip"}),  # exists
    ("rlam_export", {"path": "out/bundle.zip", "overwrite": True}),
    ("rlam_export", {"path": "notes.zip", "overwrite": True}),  # a zip, not a bundle
    ("rlam_export", {"path": "bundle.tar"}),
    ("rlam_export", {"path": "other.zip", "runs": ["nosuch"]}),
    ("rlam_export", {"path": "slim.zip", "runs": ["exported"], "objects": False}),
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[CallToolResult]]:
    root = tmp_path_factory.mktemp("mcp-export")
    with zipfile.ZipFile(root / "notes.zip", "w") as notes:
        notes.writestr("notes.txt", "someone else's file")
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "rlam_jupyter", "mcp", "--store", ".rlam", "--run", "exported"],
        env={k: v for k, v in os.environ.items() if k != "RLAM_HOME"},
        cwd=str(root),
    )

    async def drive() -> list[CallToolResult]:
        async with Client(params, read_timeout_seconds=300) as client:
            return [await client.call_tool(name, arguments) for name, arguments in CALLS]

    return root, anyio.run(drive)


def content(result: CallToolResult) -> Any:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def text(result: CallToolResult) -> str:
    return result.content[0].text  # type: ignore[union-attr]


def test_the_answer_says_where_the_bundle_is_and_what_it_holds(exported: Any) -> None:
    root, answers = exported
    answer = content(answers[2])
    bundle = root / "out" / "bundle.zip"
    assert answer["path"] == str(bundle.resolve())
    assert (answer["steps"], answer["objects"]) == (2, 5)
    with zipfile.ZipFile(bundle) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert [r["run_id"] for r in manifest["runs"]] == answer["run_ids"]
    assert [r["name"] for r in manifest["runs"]] == ["exported"]
    assert len(answer["blake3"]) == 64
    assert answer["verify"] == f"rlam verify {bundle.resolve()} --reexecute"
    assert str(bundle.resolve()) in text(answers[2])


def test_the_bundle_verifies_and_reexecutes_in_a_fresh_process(exported: Any) -> None:
    root, _ = exported
    result = run_rlam("verify", "out/bundle.zip", "--reexecute", "--json", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"]


def test_an_existing_file_is_kept_unless_overwrite_names_a_bundle(exported: Any) -> None:
    root, answers = exported
    exists, replaced, foreign = answers[3], answers[4], answers[5]
    assert exists.is_error
    assert "out/bundle.zip exists" in text(exists)
    assert "overwrite=true" in text(exists)
    assert content(replaced)["blake3"] == content(answers[2])["blake3"]  # same runs, same bytes
    assert foreign.is_error
    assert "is not an rlam bundle" in text(foreign)
    with zipfile.ZipFile(root / "notes.zip") as notes:
        assert notes.namelist() == ["notes.txt"]


@pytest.mark.parametrize(
    ("index", "expected"),
    [(6, "path='bundle.tar': a bundle is a .zip file"), (7, "no run 'nosuch'")],
)
def test_bad_arguments_are_tool_errors_naming_the_problem(
    exported: Any, index: int, expected: str
) -> None:
    root, answers = exported
    assert answers[index].is_error
    assert expected in text(answers[index])
    assert not (root / "other.zip").exists()


def test_objects_can_be_left_out(exported: Any) -> None:
    root, answers = exported
    slim = content(answers[8])
    assert slim["objects"] == 0
    assert any("objects left out" in note for note in slim["notes"])
    result = run_rlam("verify", "slim.zip", "--json", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
