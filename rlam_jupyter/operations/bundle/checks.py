"""Open a bundle and check what can be checked without running anything.

One pass over the zip: the directory is checked for hostile entries, then every
entry is hashed against the manifest, object entries against the hash in their
name, trace tables against the trace schema, and finally the provenance graph for
completeness. ``verify`` reports these checks; ``import`` refuses a bundle unless
all of them hold, and reuses what was read (tables) instead of reading it twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3
import pyarrow as pa
import pyarrow.parquet as pq

from rlam_jupyter.operations.bundle import format as fmt
from rlam_jupyter.operations.bundle.archive import DEFAULT_LIMITS, Limits, SafeArchive
from rlam_jupyter.operations.bundle.collect import with_schema
from rlam_jupyter.operations.bundle.objects_check import object_matches
from rlam_jupyter.operations.bundle.problems import BundleError, Problem
from rlam_jupyter.operations.bundle.trace_rows import OK_STATUSES, TraceRows, json_field
from rlam_jupyter.store.schema import (
    ADDED_LATER,
    EDGE_TYPES,
    IN_FLIGHT_STATUSES,
    INTERRUPTED,
    SCHEMA_VERSION,
    TABLES,
)

OK, FAILED, SKIPPED, INFO = "ok", "failed", "skipped", "info"


@dataclass
class Check:
    """One line of the verification report."""

    name: str
    status: str
    summary: str
    problems: list[Problem] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "summary": self.summary,
            "problems": [{"file": p.file, "problem": p.problem} for p in self.problems],
            "details": self.details,
        }


@dataclass
class Inspection:
    """What was read from a bundle and what the checks found."""

    path: Path
    checks: list[Check] = field(default_factory=list)
    archive: SafeArchive | None = None
    manifest: fmt.Manifest | None = None
    manifest_hash: str = ""
    tables: dict[str, pa.Table] = field(default_factory=dict)
    rows: TraceRows | None = None
    objects: dict[str, str] = field(default_factory=dict)
    """Object entry → its recorded hash (only entries whose bytes checked out)."""
    contents: dict[str, Any] = field(default_factory=dict)
    """Parsed JSON entries and raw Parquet bytes, kept for the later checks and import."""
    env_differences: list[tuple[str, Any, Any]] = field(default_factory=list)
    reexecution: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != FAILED for c in self.checks)

    @property
    def problems(self) -> list[Problem]:
        return [p for c in self.checks if c.status == FAILED for p in c.problems]

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()


def inspect_bundle(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> Inspection:
    """Run the static checks; the result is never None, its ``ok`` says whether all held."""
    result = Inspection(Path(path))
    try:
        result.archive = SafeArchive(result.path, limits)
    except BundleError as exc:
        result.add(Check("archive", FAILED, "unsafe or unreadable zip", exc.problems))
        return result
    names = result.archive.names()
    result.add(Check("archive", OK, f"{len(names)} entries, no unsafe names, links or bombs"))
    if not _check_manifest(result):
        return result
    _check_trace(result)
    if result.rows is not None:
        _check_objects_referenced(result)
        _check_graph(result)
        _check_documents(result)
    return result


# ---------------------------------------------------------------- manifest and bytes


def _check_manifest(result: Inspection) -> bool:
    archive = result.archive
    assert archive is not None
    names = set(archive.names())
    if fmt.MANIFEST not in names:
        result.add(
            Check(
                "manifest",
                FAILED,
                "no manifest",
                [Problem(fmt.MANIFEST, "missing: this is not an rlam bundle, or it was cut")],
            )
        )
        return False
    try:
        raw = archive.read(fmt.MANIFEST)
        manifest = fmt.Manifest.parse(raw)
    except BundleError as exc:
        result.add(Check("manifest", FAILED, "unreadable manifest", exc.problems))
        return False
    result.manifest = manifest
    result.manifest_hash = blake3.blake3(raw).hexdigest()
    problems: list[Problem] = []
    for name in sorted(names - set(manifest.files) - {fmt.MANIFEST}):
        problems.append(Problem(name, "not listed in the manifest (added after export?)"))
    for name in sorted(set(manifest.files) - names):
        problems.append(Problem(name, "listed in the manifest but missing from the zip"))
    checked_objects = 0
    for name in sorted(set(manifest.files) & names):
        entry = manifest.files[name]
        problem = _check_entry(result, name, entry)
        if problem:
            problems.append(Problem(name, problem))
        elif name.startswith("objects/"):
            checked_objects += 1
    if manifest.schema_version > SCHEMA_VERSION:
        problems.append(
            Problem(
                fmt.MANIFEST,
                f"trace schema version {manifest.schema_version} is newer than this "
                f"rlam-jupyter reads ({SCHEMA_VERSION}); upgrade rlam-jupyter",
            )
        )
    status = FAILED if problems else OK
    summary = (
        f"{len(manifest.files)} files, every blake3 matches; "
        f"{checked_objects} objects match their content hash"
        if not problems
        else f"{len(problems)} file(s) do not match the manifest"
    )
    result.add(Check("manifest", status, summary, problems))
    return True


def _check_entry(result: Inspection, name: str, entry: fmt.FileEntry) -> str | None:
    """Hash one entry (streaming) and check what its kind allows; returns a problem or None."""
    archive = result.archive
    assert archive is not None
    size = archive.size(name)
    if size != entry.bytes:
        what = "truncated" if size < entry.bytes else "longer than exported"
        return f"{size:,} bytes, the manifest says {entry.bytes:,} ({what})"
    obj = fmt.OBJECT_NAME.match(name)
    keep = obj is not None or name.endswith((".parquet", ".json", ".ipynb"))
    try:
        data = archive.read(name) if keep else None
    except BundleError as exc:
        return exc.problems[0].problem
    if data is None:
        hasher = blake3.blake3()
        try:
            with archive.open(name) as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    hasher.update(chunk)
        except Exception as exc:
            return f"corrupt entry: {exc}"
        digest = hasher.hexdigest()
    else:
        digest = blake3.blake3(data).hexdigest()
    if digest != entry.blake3:
        return "content altered: its blake3 does not match the manifest"
    if name.startswith("objects/"):
        if obj is None:
            return "not a valid object name (objects/xx/<blake3>.<kind>)"
        assert data is not None
        try:
            matches = object_matches(obj.group(3), data, obj.group(2))
        except ValueError as exc:
            return f"object unreadable: {exc}"
        if not matches:
            return "object content does not match the hash in its name (altered)"
        result.objects[name] = obj.group(2)
    elif data is not None and name.endswith(".parquet"):
        result.contents[name] = data
    elif data is not None and name.endswith((".json", ".ipynb")):
        try:
            result.contents[name] = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            return f"not valid JSON ({exc})"
    return None


# ---------------------------------------------------------------- trace tables


def _check_trace(result: Inspection) -> None:
    problems: list[Problem] = []
    limits = result.archive.limits if result.archive else DEFAULT_LIMITS
    for table_name, schema in TABLES.items():
        entry = fmt.trace_entry(table_name)
        data = result.contents.get(entry)
        if not isinstance(data, bytes):
            listed = result.manifest is not None and entry in result.manifest.files
            if table_name in ADDED_LATER and not listed:
                result.tables[table_name] = schema.empty_table()  # a bundle from before it
                continue
            if not any(p.file == entry for c in result.checks for p in c.problems):
                problems.append(Problem(entry, "missing: every bundle carries all trace tables"))
            continue
        table, problem = _read_parquet(data, schema, table_name, limits)
        if table is not None and problem is None:
            problem = _unsafe_run_ids(table)
        if table is not None and problem is None and table_name == "artifacts":
            problem = _unsafe_object_paths(table)
        if table is not None and problem is None and table_name == "actions":
            problem = _altered_action_sources(table)
        if problem:
            problems.append(Problem(entry, problem))
        elif table is not None:
            result.tables[table_name] = table
    for name in result.contents:
        if (
            name.startswith(fmt.TRACE_DIR)
            and name.removeprefix(fmt.TRACE_DIR).removesuffix(".parquet") not in TABLES
        ):
            problems.append(Problem(name, "unknown trace table"))
    if problems or len(result.tables) != len(TABLES):
        why = "" if problems else " (their files failed the manifest check)"
        result.add(Check("trace", FAILED, f"trace tables unusable{why}", problems))
        return
    result.rows = TraceRows.from_tables(result.tables)
    counts = ", ".join(f"{n} {t.num_rows}" for n, t in result.tables.items())
    result.add(Check("trace", OK, f"{len(TABLES)} tables, schemas match ({counts})"))


def _altered_action_sources(table: pa.Table) -> str | None:
    """A recorded action source whose text does not match its hash would be executed by
    ``verify --reexecute``: refuse the bundle instead."""
    from rlam_jupyter.actions.rebuild import RecordedSource
    from rlam_jupyter.actions.source import source_digest

    for row in table.to_pylist():
        source = RecordedSource.from_row(row)
        if source_digest(source.origin, source.payload) != source.source_hash:
            return f"the recorded source of {source.action_version} does not match its hash"
    return None


def _unsafe_run_ids(table: pa.Table) -> str | None:
    for value in set(table.column("run_id").to_pylist()):
        if not isinstance(value, str) or not fmt.RUN_ID.match(value):
            return (
                f"unsafe run id {value!r} (run ids are letters, digits, '-' and '_'; "
                "they name folders on import)"
            )
    return None


def _unsafe_object_paths(table: pa.Table) -> str | None:
    """Replay reads objects by these paths: each must be an object name inside the store."""
    for value in set(table.column("object_path").to_pylist()):
        if value is not None and not fmt.OBJECT_NAME.match(str(value)):
            return f"unsafe object path {str(value)[:80]!r} (must be objects/xx/<blake3>.<kind>)"
    return None


def _read_parquet(
    data: bytes, schema: pa.Schema, table_name: str, limits: Limits
) -> tuple[pa.Table | None, str | None]:
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        metadata = parquet.metadata
        expanded = sum(
            metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)
        )
        if expanded > limits.max_entry_bytes:
            return None, f"expands to {expanded:,} bytes, more than the limit (Parquet bomb?)"
        file_schema = parquet.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as exc:
        return None, f"not a readable Parquet file ({exc})"
    version = (file_schema.metadata or {}).get(b"rlam.schema_version")
    if version is not None and version.isdigit() and int(version) > SCHEMA_VERSION:
        return None, f"written with trace schema {int(version)}, newer than {SCHEMA_VERSION}"
    expected = {f.name: f.type for f in schema}
    wrong = []
    for field_ in file_schema:
        if field_.name not in expected:
            wrong.append(f"unknown column {field_.name!r}")
        elif field_.type != expected[field_.name]:
            wrong.append(
                f"column {field_.name!r} is {field_.type}, the {table_name} table needs "
                f"{expected[field_.name]}"
            )
    present = set(file_schema.names)
    for required in fmt.REQUIRED_COLUMNS.get(table_name, ()):
        if required not in present:
            wrong.append(f"required column {required!r} is missing")
    if wrong:
        return None, "wrong schema: " + "; ".join(wrong[:6])
    try:
        table = parquet.read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        return None, f"not a readable Parquet file ({exc})"
    return with_schema(table, schema), None


# ---------------------------------------------------------------- references and graph


def _check_objects_referenced(result: Inspection) -> None:
    rows, manifest = result.rows, result.manifest
    assert rows is not None
    assert manifest is not None
    if not manifest.objects_included:
        result.add(
            Check(
                "objects",
                SKIPPED,
                "exported without objects (--no-objects): output bytes cannot be checked",
            )
        )
        return
    problems = []
    present = set(result.objects)
    in_manifest = set(manifest.files)
    needed = 0
    for artifact_id, art in sorted(rows.artifacts.items()):
        path = art.get("object_path")
        if not path:
            continue
        needed += 1
        if path in present:
            continue
        if path in in_manifest:
            continue  # listed but failed the byte checks: already reported under the manifest
        problems.append(
            Problem(
                path,
                f"missing: the object of artifact {art.get('name')!r} "
                f"({artifact_id[:12]}, step {art.get('step_id')}) is not in the bundle",
            )
        )
    status = FAILED if problems else OK
    summary = (
        f"{needed} referenced objects present"
        if not problems
        else (f"{len(problems)} referenced object(s) missing")
    )
    result.add(Check("objects", status, summary, problems))


def _check_graph(result: Inspection) -> None:
    rows = result.rows
    assert rows is not None
    steps_file, edges_file = fmt.trace_entry("steps"), fmt.trace_entry("edges")
    problems: list[Problem] = []
    run_ids = {r["run_id"] for r in rows.runs}
    manifest_runs = {r["run_id"] for r in result.manifest.runs} if result.manifest else set()
    for run_id in sorted(manifest_runs - run_ids):
        problems.append(
            Problem(fmt.trace_entry("runs"), f"run {run_id} of the manifest is missing")
        )
    for run in rows.runs:
        parent = run.get("parent_run_id")
        if parent and parent not in run_ids:
            problems.append(
                Problem(
                    fmt.trace_entry("runs"),
                    f"run {run['run_id']} is a fork of {parent}, which is not in the bundle",
                )
            )
        if run.get("env_id") and run["env_id"] not in rows.environments:
            problems.append(
                Problem(
                    fmt.trace_entry("environments"),
                    f"environment {run['env_id'][:12]} of run {run['run_id']} is not recorded",
                )
            )
    failures = 0
    unfinished = []
    for step in rows.steps:
        step_id, status = step["step_id"], step["status"]
        if step["run_id"] not in run_ids:
            problems.append(Problem(steps_file, f"step {step_id} belongs to no run of the bundle"))
        if status == "failed":
            failures += 1
            if not step.get("error_type") or not step.get("error_message"):
                problems.append(
                    Problem(
                        steps_file,
                        f"failed step {step_id} has no recorded cause (error type/message)",
                    )
                )
        elif status == "rejected" and not step.get("error_message"):
            problems.append(Problem(steps_file, f"rejected step {step_id} has no recorded reason"))
        elif status in OK_STATUSES:
            for name, artifact_id in json_field(step, "outputs", {}).items():
                if artifact_id not in rows.artifacts:
                    problems.append(
                        Problem(
                            steps_file,
                            f"output {name!r} of step {step_id} ({artifact_id[:12]}) has no artifact record",
                        )
                    )
            for name, artifact_id in json_field(step, "inputs", {}).items():
                if artifact_id not in rows.artifacts:
                    problems.append(
                        Problem(
                            steps_file,
                            f"input {name!r} of step {step_id} ({str(artifact_id)[:12]}) has no artifact record",
                        )
                    )
        elif status in (*IN_FLIGHT_STATUSES, INTERRUPTED):
            unfinished.append(step_id)
    statuses = {s["step_id"]: s["status"] for s in rows.steps}
    for edge in rows.edges:
        problem = _edge_problem(edge, rows, run_ids, statuses)
        if problem:
            problems.append(Problem(edges_file, problem))
    details = []
    if unfinished:
        details.append(
            f"{len(unfinished)} step(s) never finished (dry run or interrupted): "
            + ", ".join(unfinished[:5])
        )
    summary = (
        f"{len(rows.steps)} steps, {len(rows.edges)} edges, no dangling edge; "
        f"{failures} failure(s), each with its cause"
    )
    if problems:
        summary = f"{len(problems)} problem(s) in the provenance graph"
    result.add(Check("graph", FAILED if problems else OK, summary, problems, details))


def _edge_problem(
    edge: dict[str, Any], rows: TraceRows, run_ids: set[str], statuses: dict[str, str]
) -> str | None:
    kind, src, dst = edge["type"], edge["src"], edge["dst"]
    label = f"{kind} edge {str(src)[:40]} → {str(dst)[:40]}"
    if kind not in EDGE_TYPES:
        return f"{label}: unknown edge type"
    if edge["run_id"] not in run_ids:
        return f"{label}: belongs to no run of the bundle"
    if kind in ("used", "generated"):
        if src not in rows.step_ids:
            return f"{label}: dangling, no step {src}"
        if dst not in rows.artifacts:
            return f"{label}: dangling, no artifact {dst}"
    elif kind == "derived_from":
        for end in (src, dst):
            if end not in rows.artifacts:
                return f"{label}: dangling, no artifact {end}"
    elif kind == "recovers":
        if src not in rows.step_ids:
            return f"{label}: dangling, no step {src}"
        if statuses.get(dst) not in ("failed", "rejected"):
            return f"{label}: the recovered step {dst} is not a recorded failure"
    elif kind == "forked_from":
        for end in (src, dst):
            if end not in run_ids:
                return f"{label}: dangling, no run {end}"
    elif kind == "proposed_by":
        if src not in rows.step_ids:
            return f"{label}: dangling, no step {src}"
        if dst not in rows.llm_calls and dst not in rows.step_ids:
            return f"{label}: dangling, no LLM call {dst}"
    return None


def _check_documents(result: Inspection) -> None:
    rows = result.rows
    assert rows is not None
    problems: list[Problem] = []
    step_ids = sorted(rows.step_ids)
    prov = result.contents.get(fmt.PROV)
    if not isinstance(prov, dict):
        problems.append(Problem(fmt.PROV, "missing or not a JSON object"))
    else:
        activities = prov.get("activity", {})
        missing = [s for s in step_ids if f"step:{s}" not in activities]
        if missing:
            problems.append(
                Problem(fmt.PROV, f"{len(missing)} step(s) are not activities, e.g. {missing[0]}")
            )
    crate = result.contents.get(fmt.RO_CRATE)
    if not isinstance(crate, dict) or not isinstance(crate.get("@graph"), list):
        problems.append(Problem(fmt.RO_CRATE, "missing or has no @graph"))
    else:
        actions = {
            e.get("@id")
            for e in crate["@graph"]
            if isinstance(e, dict) and e.get("@type") == "CreateAction"
        }
        missing = [s for s in step_ids if f"#step-{s}" not in actions]
        if missing:
            problems.append(
                Problem(
                    fmt.RO_CRATE, f"{len(missing)} step(s) have no CreateAction, e.g. {missing[0]}"
                )
            )
    manifest = result.manifest
    notebook = manifest.notebook if manifest else None
    cells_with_steps = 0
    if notebook:
        if not fmt.NOTEBOOK_NAME.match(notebook):
            problems.append(Problem(notebook, "not a valid notebook entry name"))
        else:
            content = result.contents.get(notebook)
            if not isinstance(content, dict) or not isinstance(content.get("cells"), list):
                problems.append(Problem(notebook, "missing or not a notebook"))
            else:
                for cell in content["cells"]:
                    meta = cell.get("metadata", {}) if isinstance(cell, dict) else {}
                    ids = meta.get("rlam", {}).get("step_ids", []) if isinstance(meta, dict) else []
                    unknown = [i for i in ids if i not in rows.step_ids]
                    if unknown:
                        problems.append(
                            Problem(notebook, f"a cell names unknown step {unknown[0]}")
                        )
                    cells_with_steps += bool(ids)
    summary = f"prov.json and ro-crate-metadata.json cover all {len(step_ids)} steps" + (
        f"; {cells_with_steps} notebook cell(s) carry step ids" if notebook else "; no notebook"
    )
    result.add(
        Check(
            "provenance",
            FAILED if problems else OK,
            summary if not problems else "provenance documents incomplete",
            problems,
        )
    )
