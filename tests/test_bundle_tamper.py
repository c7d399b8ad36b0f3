"""Hostile bundles: each one is refused by ``verify`` and ``import`` with a message naming
the file and the problem, and nothing is written anywhere (least of all outside the target)."""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import blake3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlam_jupyter.actions.proposal import Proposal
from rlam_jupyter.engine import Engine
from rlam_jupyter.operations.bundle import BundleError, Limits, export, import_bundle, verify_bundle

Entries = dict[str, bytes]


@pytest.fixture(scope="module")
def good_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real bundle: a dataset, a failed step (with cause) and its recovery."""
    folder = tmp_path_factory.mktemp("source")
    engine = Engine(folder / ".rlam")
    run = engine.start_run("iris", seed=3)
    engine.execute(run, Proposal("load_dataset", {"name": "iris"}, targets=("raw",)))
    failed = engine.execute(
        run, Proposal("select_columns", {"columns": ["nope"]}, {"data": "raw"}, ("few",))
    )
    assert failed.status == "failed"
    engine.execute(
        run,
        Proposal("select_columns", {"columns": ["target"]}, {"data": "raw"}, ("few",)),
        recovers=failed.step_id,
    )
    engine.end_run(run)
    out = folder / "good.zip"
    export(out=out, store=folder / ".rlam")
    assert verify_bundle(out).ok
    return out


def _entries(bundle: Path) -> Entries:
    with zipfile.ZipFile(bundle) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write(
    path: Path, entries: list[tuple[str, bytes]] | Entries, *, manifest: bool = False
) -> Path:
    """Write entries as a zip; ``manifest=True`` re-signs it like a careful attacker would."""
    items = list(entries.items()) if isinstance(entries, dict) else list(entries)
    if manifest:
        files = [
            {"path": n, "blake3": blake3.blake3(d).hexdigest(), "bytes": len(d)}
            for n, d in items
            if n != "manifest.json"
        ]
        old = json.loads(dict(items)["manifest.json"])
        old["files"] = sorted(files, key=lambda f: f["path"])
        items = [(n, d) for n, d in items if n != "manifest.json"]
        items.append(("manifest.json", json.dumps(old).encode()))
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in items:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return path


def _first_object(entries: Entries) -> str:
    return next(n for n in sorted(entries) if n.startswith("objects/"))


def _table(entries: Entries, name: str) -> pa.Table:
    return pq.read_table(pa.BufferReader(entries[f"trace/{name}.parquet"]))


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


# ------------------------------------------------------------------ the hostile bundles


def zip_slip(good: Entries, sandbox: Path, out: Path) -> Path:
    return _write(out, [*good.items(), ("../evil.txt", b"escaped")])


def nested_zip_slip(good: Entries, sandbox: Path, out: Path) -> Path:
    return _write(out, [*good.items(), ("objects/../../../evil.txt", b"escaped")])


def absolute_path(good: Entries, sandbox: Path, out: Path) -> Path:
    return _write(out, [*good.items(), (str(sandbox / "absolute-evil.txt"), b"escaped")])


def windows_traversal(good: Entries, sandbox: Path, out: Path) -> Path:
    return _write(out, [*good.items(), ("..\\evil.txt", b"escaped")])


def drive_letter(good: Entries, sandbox: Path, out: Path) -> Path:
    return _write(out, [*good.items(), ("C:/evil.txt", b"escaped")])


def symlink(good: Entries, sandbox: Path, out: Path) -> Path:
    with zipfile.ZipFile(_write(out, good), "a") as archive:
        info = zipfile.ZipInfo("objects/link")
        info.create_system = 3
        info.external_attr = 0o120777 << 16
        archive.writestr(info, "/etc/passwd")
    return out


def zip_bomb(good: Entries, sandbox: Path, out: Path) -> Path:
    return _write(out, [*good.items(), ("environment/bomb.json", b"\0" * (32 << 20))])


def duplicated_entry(good: Entries, sandbox: Path, out: Path) -> Path:
    name = _first_object(good)
    with pytest.warns(UserWarning, match="Duplicate name"):
        return _write(out, [*good.items(), (name, b"second copy")])


def case_collision(good: Entries, sandbox: Path, out: Path) -> Path:
    return _write(out, [*good.items(), ("Manifest.json", b"{}")])


def overlapping_entries(good: Entries, sandbox: Path, out: Path) -> Path:
    """Two directory entries share one local file (the trick of non-recursive zip bombs)."""
    _write(out, good)
    data = bytearray(out.read_bytes())
    with zipfile.ZipFile(out) as archive:
        infos = archive.infolist()
        start = archive.start_dir
    first, second = infos[0], infos[1]
    position = data.index(b"PK\x01\x02", start)
    for _ in range(2):  # walk to the second central directory record
        name_len, extra_len, comment_len = struct.unpack("<3H", data[position + 28 : position + 34])
        if data[position + 46 : position + 46 + name_len].decode() == second.filename:
            break
        position += 46 + name_len + extra_len + comment_len
    struct.pack_into("<L", data, position + 42, first.header_offset)
    out.write_bytes(bytes(data))
    return out


def altered_bytes(good: Entries, sandbox: Path, out: Path) -> Path:
    entries = dict(good)
    name = _first_object(entries)
    entries[name] = entries[name][:-1] + bytes([entries[name][-1] ^ 1])
    return _write(out, entries)


def altered_and_resigned(good: Entries, sandbox: Path, out: Path) -> Path:
    """Valid bytes of another table under this object's name, and a manifest to match."""
    entries = dict(good)
    first, second = [n for n in sorted(entries) if n.endswith(".table")][:2]
    entries[first] = entries[second]
    return _write(out, entries, manifest=True)


def missing_object(good: Entries, sandbox: Path, out: Path) -> Path:
    entries = dict(good)
    del entries[_first_object(entries)]
    return _write(out, entries, manifest=True)


def truncated_archive(good: Entries, sandbox: Path, out: Path) -> Path:
    _write(out, good)
    data = out.read_bytes()
    out.write_bytes(data[: len(data) * 2 // 3])
    return out


def truncated_parquet(good: Entries, sandbox: Path, out: Path) -> Path:
    entries = dict(good)
    entries["trace/edges.parquet"] = entries["trace/edges.parquet"][:200]
    return _write(out, entries, manifest=True)


def wrong_parquet_schema(good: Entries, sandbox: Path, out: Path) -> Path:
    entries = dict(good)
    steps = _table(entries, "steps")
    index = steps.schema.get_field_index("seq")
    steps = steps.set_column(index, "seq", steps.column("seq").cast(pa.string()))
    entries["trace/steps.parquet"] = _parquet(steps)
    return _write(out, entries, manifest=True)


def unlisted_file(good: Entries, sandbox: Path, out: Path) -> Path:
    return _write(out, [*good.items(), ("notes.txt", b"added later")])


def no_manifest(good: Entries, sandbox: Path, out: Path) -> Path:
    return _write(out, {n: d for n, d in good.items() if n != "manifest.json"})


def dangling_edge(good: Entries, sandbox: Path, out: Path) -> Path:
    entries = dict(good)
    edges = _table(entries, "edges")
    extra = edges.slice(0, 1).to_pylist()[0]
    extra.update(type="used", dst="f" * 64)
    entries["trace/edges.parquet"] = _parquet(
        pa.concat_tables([edges, pa.Table.from_pylist([extra], schema=edges.schema)])
    )
    return _write(out, entries, manifest=True)


def failure_without_cause(good: Entries, sandbox: Path, out: Path) -> Path:
    entries = dict(good)
    steps = _table(entries, "steps")
    rows = steps.to_pylist()
    for row in rows:
        if row["status"] == "failed":
            row["error_type"] = None
            row["error_message"] = None
    entries["trace/steps.parquet"] = _parquet(pa.Table.from_pylist(rows, schema=steps.schema))
    return _write(out, entries, manifest=True)


def run_id_traversal(good: Entries, sandbox: Path, out: Path) -> Path:
    """A run id that would name a journal folder outside the store."""
    entries = dict(good)
    for name in ("runs", "steps", "edges"):
        table = _table(entries, name)
        index = table.schema.get_field_index("run_id")
        evil = pa.array(["../../evil"] * table.num_rows, pa.string())
        entries[f"trace/{name}.parquet"] = _parquet(table.set_column(index, "run_id", evil))
    return _write(out, entries, manifest=True)


def object_path_traversal(good: Entries, sandbox: Path, out: Path) -> Path:
    """An artifact whose recorded object path points outside the store (read on replay)."""
    entries = dict(good)
    table = _table(entries, "artifacts")
    index = table.schema.get_field_index("object_path")
    evil = pa.array(["../../../etc/passwd"] * table.num_rows, pa.string())
    entries["trace/artifacts.parquet"] = _parquet(table.set_column(index, "object_path", evil))
    return _write(out, entries, manifest=True)


def altered_action_source(good: Entries, sandbox: Path, out: Path) -> Path:
    """Code slipped into a recorded action source: re-execution would run it."""
    entries = dict(good)
    table = _table(entries, "actions")
    rows = table.to_pylist()
    rows[0]["source"] = json.dumps({"module": "x", "code": "import os\n", "files": {}})
    entries["trace/actions.parquet"] = _parquet(pa.Table.from_pylist(rows, schema=table.schema))
    return _write(out, entries, manifest=True)


def not_a_zip(good: Entries, sandbox: Path, out: Path) -> Path:
    out.write_bytes(b"PK\x03\x04 definitely not a zip" * 10)
    return out


def newer_format(good: Entries, sandbox: Path, out: Path) -> Path:
    entries = dict(good)
    manifest = json.loads(entries["manifest.json"])
    manifest["format_version"] = 99
    entries["manifest.json"] = json.dumps(manifest).encode()
    return _write(out, entries)


Hostile = Callable[[Entries, Path, Path], Path]
CASES: list[tuple[Hostile, str, str]] = [
    (zip_slip, "../evil.txt", "path traversal"),
    (nested_zip_slip, "objects/../../../evil.txt", "path traversal"),
    (absolute_path, "absolute-evil.txt", "absolute path"),
    (windows_traversal, "..\\evil.txt", "backslash"),
    (drive_letter, "C:/evil.txt", "drive letter"),
    (symlink, "objects/link", "symbolic link"),
    (zip_bomb, "environment/bomb.json", "compression ratio"),
    (duplicated_entry, "objects/", "duplicated entry"),
    (case_collision, "Manifest.json", "collides with 'manifest.json'"),
    (overlapping_entries, "", "overlaps entry"),
    (altered_bytes, "objects/", "content altered"),
    (altered_and_resigned, ".table", "does not match the hash in its name"),
    (missing_object, "objects/", "is not in the bundle"),
    (truncated_archive, "hostile.zip", "not a readable zip archive"),
    (truncated_parquet, "trace/edges.parquet", "not a readable Parquet file"),
    (wrong_parquet_schema, "trace/steps.parquet", "column 'seq' is string"),
    (unlisted_file, "notes.txt", "not listed in the manifest"),
    (no_manifest, "manifest.json", "missing"),
    (dangling_edge, "trace/edges.parquet", "dangling, no artifact " + "f" * 64),
    (failure_without_cause, "trace/steps.parquet", "has no recorded cause"),
    (run_id_traversal, "trace/runs.parquet", "unsafe run id '../../evil'"),
    (object_path_traversal, "trace/artifacts.parquet", "unsafe object path '../../../etc/passwd'"),
    (altered_action_source, "trace/actions.parquet", "does not match its hash"),
    (not_a_zip, "hostile.zip", "not a readable zip archive"),
    (newer_format, "manifest.json", "format version 99"),
]


def _files(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


@pytest.mark.parametrize(("make", "file", "problem"), CASES, ids=[c[0].__name__ for c in CASES])
def test_hostile_bundle_is_refused_naming_file_and_problem(
    make: Hostile, file: str, problem: str, good_bundle: Path, tmp_path: Path
) -> None:
    sandbox = tmp_path / "sandbox"
    target = sandbox / "deep" / "target"
    target.mkdir(parents=True)
    hostile = make(_entries(good_bundle), sandbox, tmp_path / "hostile.zip")
    before = _files(sandbox)

    report = verify_bundle(hostile)
    assert not report.ok
    found = [str(p) for c in report.checks for p in c.problems]
    assert any(file in f and problem in f for f in found), (problem, found)

    with pytest.raises(BundleError) as refused:
        import_bundle(hostile, target / ".rlam")
    assert file in str(refused.value)
    assert problem in str(refused.value)
    assert "nothing was written" in str(refused.value)
    assert _files(sandbox) == before, "a refused import wrote files"
    assert not (sandbox / "evil.txt").exists()
    assert not (sandbox / "absolute-evil.txt").exists()


def test_there_are_at_least_twelve_hostile_bundles() -> None:
    assert len(CASES) >= 12


def test_size_limits_are_enforced_per_entry_and_in_total(good_bundle: Path) -> None:
    per_entry = verify_bundle(good_bundle, limits=Limits(max_entry_bytes=10_000))
    assert not per_entry.ok
    assert any("per entry" in str(p) for c in per_entry.checks for p in c.problems)
    total = verify_bundle(good_bundle, limits=Limits(max_total_bytes=10_000))
    assert any("in all" in str(p) for c in total.checks for p in c.problems)
    entries = Limits(max_entries=3)
    assert not verify_bundle(good_bundle, limits=entries).ok


def test_the_good_bundle_imports(good_bundle: Path, tmp_path: Path) -> None:
    result = import_bundle(good_bundle, tmp_path / ".rlam")
    assert len(result.imported) == 1
    assert result.objects_written > 0
    written = {p.relative_to(tmp_path) for p in _files(tmp_path) if p.is_file()}
    assert all(str(p).startswith(".rlam/") for p in written)


def test_parquet_bomb_is_refused_before_it_is_read(good_bundle: Path, tmp_path: Path) -> None:
    from rlam_jupyter.store.schema import APPROVALS

    entries = _entries(good_bundle)
    rows = 20_000
    columns = {f.name: pa.nulls(rows, f.type) for f in APPROVALS}
    columns["decision"] = pa.array(["x" * 1000] * rows)
    sink = pa.BufferOutputStream()
    pq.write_table(
        pa.table(columns, schema=APPROVALS), sink, use_dictionary=False, compression="zstd"
    )
    entries["trace/approvals.parquet"] = bytes(sink.getvalue().to_pybytes())
    hostile = _write(tmp_path / "bomb.zip", entries, manifest=True)
    report = verify_bundle(hostile, limits=Limits(max_entry_bytes=1_000_000))
    problems = [str(p) for c in report.checks for p in c.problems]
    assert any("trace/approvals.parquet" in p and "Parquet bomb" in p for p in problems), problems


def test_a_bundle_from_an_older_schema_verifies_and_imports(
    good_bundle: Path, tmp_path: Path
) -> None:
    """Columns added to the trace later are optional in a bundle: missing ones become null."""
    entries = _entries(good_bundle)
    steps = _table(entries, "steps")
    older = steps.drop_columns(["traceback", "cell_id", "host"])
    entries["trace/steps.parquet"] = _parquet(older)
    bundle = _write(tmp_path / "older.zip", entries, manifest=True)
    report = verify_bundle(bundle)
    assert report.ok, report.text()
    result = import_bundle(bundle, tmp_path / ".rlam")
    assert len(result.imported) == 1


def test_a_bundle_from_before_action_sources_were_recorded_still_verifies(
    good_bundle: Path, tmp_path: Path
) -> None:
    entries = {n: d for n, d in _entries(good_bundle).items() if n != "trace/actions.parquet"}
    older = _write(tmp_path / "older.zip", entries, manifest=True)
    report = verify_bundle(older)
    assert report.ok, report.text()
