"""``export``: one deterministic zip with a notebook and everything needed to check it.

The same runs exported twice give the same bytes: tables are sorted on every column,
JSON has sorted keys, the zip has fixed timestamps, and nothing in the bundle depends
on when or where the export ran.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rlam_jupyter.errors import RlamError
from rlam_jupyter.operations.bundle import format as fmt
from rlam_jupyter.operations.bundle.archive import Payload, write_deterministic_zip
from rlam_jupyter.operations.bundle.collect import TraceSlice, collect, select_runs
from rlam_jupyter.operations.bundle.notebook import annotate, cell_runs, step_cells
from rlam_jupyter.operations.bundle.problems import BundleError, Problem
from rlam_jupyter.operations.bundle.prov_json import build_prov
from rlam_jupyter.operations.bundle.ro_crate import build_ro_crate
from rlam_jupyter.operations.bundle.trace_rows import TraceRows, arrow_table
from rlam_jupyter.store.catalog import Connection, connect
from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.store.resolve import StoreRef, resolve_store
from rlam_jupyter.store.schema import SCHEMA_VERSION
from rlam_jupyter.values.hashing import hash_file
from rlam_jupyter.version import __version__

_STREAM_FROM_BYTES = 8 << 20
"""Objects larger than this are streamed from disk; smaller ones are read once."""


def producer() -> str:
    return f"rlam-jupyter {__version__}"


@dataclass(frozen=True)
class ExportResult:
    """Where the bundle went and what is in it."""

    path: Path
    run_ids: tuple[str, ...]
    steps: int
    objects: int
    files: int
    size_bytes: int
    bundle_hash: str
    notebook: str | None = None
    steps_without_cell: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        notebook = f", notebook {self.notebook}" if self.notebook else ", no notebook"
        lines = [
            f"exported {len(self.run_ids)} run(s), {self.steps} step(s), {self.objects} object(s)"
            f"{notebook} → {self.path} ({self.size_bytes:,} bytes, blake3 {self.bundle_hash[:16]})",
        ]
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"check it anywhere with: rlam verify {self.path} --reexecute")
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "run_ids": list(self.run_ids),
            "steps": self.steps,
            "objects": self.objects,
            "files": self.files,
            "size_bytes": self.size_bytes,
            "blake3": self.bundle_hash,
            "notebook": self.notebook,
            "steps_without_cell": self.steps_without_cell,
            "notes": list(self.notes),
        }


def export(
    notebook: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    runs: Sequence[str] | None = None,
    store: StoreRef = None,
    *,
    include_objects: bool = True,
    include_llm_content: bool = True,
    kernel_writer: str | None = None,
) -> ExportResult:
    """Write a provenance bundle (zip) of ``runs`` and, if given, their ``notebook``.

    Without ``runs``: the notebook's runs (see :func:`notebook_runs`), or every run in
    the store when no notebook is given. Fork ancestors are always included.
    ``kernel_writer``: the writer id of the notebook's own kernel, when the export runs
    there (its runs belong to the notebook even before the notebook is saved). Raises
    :class:`RlamError` naming what is missing (a run, the notebook, an object).
    """
    layout = resolve_store(store)
    notebook_path = Path(notebook) if notebook is not None else None
    notebook_bytes = _read_notebook(notebook_path) if notebook_path is not None else None
    con = connect(layout)
    try:
        refs, notes = _run_refs(con, layout, runs, notebook_path, notebook_bytes, kernel_writer)
        run_ids = select_runs(con, refs)
        trace = collect(con, run_ids, llm_content=include_llm_content)
    finally:
        con.close()
    contents = _contents(layout, trace, notebook_path, notebook_bytes, include_objects)
    entries, rows = contents.entries, contents.rows
    files = {name: _hash_and_size(payload) for name, payload in entries.items()}
    crate = build_ro_crate(rows, files, producer=producer(), notebook=contents.notebook)
    entries[fmt.RO_CRATE] = fmt.json_bytes(crate)
    files[fmt.RO_CRATE] = _hash_and_size(entries[fmt.RO_CRATE])
    manifest = fmt.Manifest(
        files={p: fmt.FileEntry(p, h, n) for p, (h, n) in files.items()},
        runs=[{"run_id": r["run_id"], "name": r["name"], "status": r["status"]} for r in rows.runs],
        schema_version=SCHEMA_VERSION,
        objects_included=include_objects,
        llm_content_included=include_llm_content,
        notebook=contents.notebook,
        producer=producer(),
    )
    entries[fmt.MANIFEST] = fmt.json_bytes(manifest.to_json())
    out_path = Path(out) if out is not None else _default_out(notebook_path, rows)
    write_deterministic_zip(out_path, entries.items())
    if notebook_path is not None:
        notes.append(f"notebook as last saved: {notebook_path}")
        if contents.unmatched:
            notes.append(
                f"{contents.unmatched} step(s) could not be matched to a cell of "
                f"{notebook_path.name}"
            )
    if not include_objects:
        notes.append("objects left out (--no-objects): verify can check hashes, not bytes")
    return ExportResult(
        path=out_path.resolve(),
        run_ids=run_ids,
        steps=len(rows.steps),
        objects=sum(1 for name in entries if name.startswith("objects/")),
        files=len(entries),
        size_bytes=out_path.stat().st_size,
        bundle_hash=hash_file(out_path),
        notebook=contents.notebook,
        steps_without_cell=contents.unmatched,
        notes=tuple(notes),
    )


def _run_refs(
    con: Connection,
    layout: StoreLayout,
    runs: Sequence[str] | None,
    notebook_path: Path | None,
    notebook_bytes: bytes | None,
    kernel_writer: str | None,
) -> tuple[Sequence[str] | None, list[str]]:
    """The runs to export: ``runs`` when given, else the notebook's runs; and the notes
    the export reports (the runs its outputs name that the store lacks)."""
    notes: list[str] = []
    if runs or notebook_path is None or notebook_bytes is None:
        return runs, notes
    refs, missing = notebook_runs(con, notebook_path, notebook_bytes, kernel_writer=kernel_writer)
    if not refs:
        raise RlamError(
            f"no run in the store at {layout.root} came from {notebook_path}; "
            "run its %%rlam cells first, or name the runs with --runs"
        )
    if missing:
        notes.append(
            f"{len(missing)} run(s) named in the notebook's outputs are not in the "
            f"store at {layout.root} and are not in the bundle: {', '.join(missing)}"
        )
    return refs, notes


def _read_notebook(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise RlamError(
            f"cannot read the notebook {path}: {exc.strerror or exc}; "
            "pass the path of a saved .ipynb file"
        ) from None


def notebook_runs(
    con: Connection,
    path: Path,
    notebook: bytes,
    *,
    kernel_writer: str | None = None,
) -> tuple[list[str], list[str]]:
    """The runs a notebook's bundle holds (fork ancestors are added later), and the run
    ids its outputs name that this store lacks.

    A run belongs to the notebook when its cells' outputs or ids say they created it,
    when it recorded the notebook as its own, or when the kernel that wrote one of those
    also wrote it: forks from ``%rlam fork``, the sidebar (sent outside any cell) and
    agents are recorded by the notebook's kernel. A run matched only by a cell's body
    (a notebook saved without outputs) counts unless it recorded another notebook as
    its own. Runs its outputs only show (replayed, diffed) are included too, so the
    notebook reads whole.
    """
    steps = _cell_columns(con)
    try:
        cells = cell_runs(notebook, step_cells(steps, set(steps.column("run_id").to_pylist())))
    except ValueError as exc:
        raise RlamError(f"{path} is not a notebook: {exc}") from None
    rows = con.execute("SELECT run_id, notebook, writer FROM runs").fetchall()
    known = {run_id for run_id, _, _ in rows}
    recorded_here = {
        run_id: _recorded_as(recorded, path) for run_id, recorded, _ in rows if recorded
    }
    own = set(cells.certain) | {
        run_id
        for run_id, _, writer in rows
        if recorded_here.get(run_id) or (kernel_writer is not None and writer == kernel_writer)
    }
    writers = {writer for run_id, _, writer in rows if run_id in own and writer}
    by_kernel = {run_id for run_id, _, writer in rows if writer in writers}
    by_body = {run_id for run_id in cells.by_body if recorded_here.get(run_id, True)}
    wanted = own | by_kernel | by_body | cells.shown
    return sorted(wanted & known), sorted(wanted - known)


def _recorded_as(recorded: str, path: Path) -> bool:
    """Whether a run's recorded notebook is ``path``: JupyterLab records the path from
    the server root (``work/analysis.ipynb``), so a relative record matches the end of
    ``path``; an absolute one must be it."""
    record = Path(recorded)
    target = path.resolve()
    if record.is_absolute():
        return record.resolve() == target
    parts = tuple(p for p in record.parts if p != ".")
    return bool(parts) and target.parts[-len(parts) :] == parts


def _cell_columns(con: Connection) -> pa.Table:
    relation = con.sql(
        "SELECT run_id, step_id, cell_id, cell_execution_count, cell_source_hash, event_no "
        "FROM steps"
    )
    return arrow_table(relation)


@dataclass(frozen=True)
class _Contents:
    """Every entry but the RO-Crate and the manifest (they describe these), and facts about them."""

    entries: dict[str, Payload]
    rows: TraceRows
    notebook: str | None
    unmatched: int


def _contents(
    layout: StoreLayout,
    trace: TraceSlice,
    notebook_path: Path | None,
    notebook_bytes: bytes | None,
    include_objects: bool,
) -> _Contents:
    entries: dict[str, Payload] = {}
    for name, table in trace.tables.items():
        entries[fmt.trace_entry(name)] = parquet_bytes(table)
    rows = TraceRows.from_tables(trace.tables)
    if include_objects:
        entries.update(_objects(layout, rows))
    fingerprints = {
        env_id: json.loads(env["fingerprint"]) for env_id, env in sorted(rows.environments.items())
    }
    entries[fmt.FINGERPRINTS] = fmt.json_bytes(fingerprints)
    entries[fmt.LOCK] = lock_text(fingerprints, rows).encode()
    notebook_entry: str | None = None
    unmatched: list[str] = []
    if notebook_path is not None and notebook_bytes is not None:
        try:
            annotated, unmatched = annotate(
                notebook_bytes, step_cells(trace.tables["steps"], trace.run_ids)
            )
        except ValueError as exc:
            raise RlamError(f"{notebook_path} is not a notebook: {exc}") from None
        notebook_entry = fmt.NOTEBOOK_DIR + _safe_notebook_name(notebook_path.name)
        entries[notebook_entry] = annotated
    entries[fmt.PROV] = fmt.json_bytes(build_prov(rows, producer()))
    return _Contents(entries, rows, notebook_entry, len(unmatched))


def parquet_bytes(table: pa.Table) -> bytes:
    """A trace table as Parquet (zstd); identical tables give identical bytes."""
    table = table.replace_schema_metadata({"rlam.schema_version": str(SCHEMA_VERSION)})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", write_statistics=True)
    return bytes(sink.getvalue().to_pybytes())


def _objects(layout: StoreLayout, rows: TraceRows) -> dict[str, Payload]:
    """Object contents by entry name; large files are streamed into the zip, not held."""
    entries: dict[str, Payload] = {}
    missing: list[Problem] = []
    for artifact_id, art in sorted(rows.artifacts.items()):
        path = art.get("object_path")
        if not path or path in entries:
            continue
        if not fmt.OBJECT_NAME.match(path):
            missing.append(
                Problem(path, f"artifact {artifact_id[:12]} has a malformed object path")
            )
            continue
        source = layout.root / path
        try:
            size = source.stat().st_size
        except FileNotFoundError:
            size = -1
        if size > _STREAM_FROM_BYTES:
            entries[path] = source
        elif size >= 0:
            entries[path] = source.read_bytes()
        else:
            missing.append(
                Problem(
                    path,
                    f"object of artifact {art.get('name')!r} (step {art.get('step_id')}) "
                    "is missing from the store",
                )
            )
    if missing:
        raise BundleError(
            missing,
            f"cannot export: {len(missing)} object(s) missing from the store at {layout.root} "
            "(re-run their steps, or export with --no-objects to ship hashes only)",
        )
    return entries


def lock_text(fingerprints: dict[str, dict[str, object]], rows: TraceRows) -> str:
    """A ``pip freeze``-style lock per recorded environment (the current one if none)."""
    sections = []
    for env_id, data in fingerprints.items():
        runs = sorted(r["name"] for r in rows.runs if r.get("env_id") == env_id)
        python = data.get("python") if isinstance(data.get("python"), dict) else {}
        packages = data.get("packages") if isinstance(data.get("packages"), dict) else {}
        assert isinstance(python, dict)
        assert isinstance(packages, dict)
        header = [
            f"# environment {env_id}",
            f"# python {python.get('version', '?')} ({python.get('implementation', '?')})",
            f"# runs: {', '.join(runs) or '-'}",
        ]
        sections.append("\n".join(header + [f"{n}=={v}" for n, v in sorted(packages.items())]))
    if not sections:
        current = sorted(
            {
                f"{d.metadata['Name'].lower().replace('_', '-')}=={d.version}"
                for d in importlib.metadata.distributions()
                if d.metadata["Name"]
            }
        )
        sections.append(
            "\n".join(["# no fingerprint recorded: the exporting environment", *current])
        )
    return "\n\n".join(sections) + "\n"


def _hash_and_size(payload: Payload) -> tuple[str, int]:
    if isinstance(payload, Path):
        return hash_file(payload), payload.stat().st_size
    return _blake3(payload), len(payload)


def _blake3(data: bytes) -> str:
    import blake3

    return str(blake3.blake3(data).hexdigest())


def _safe_notebook_name(name: str) -> str:
    stem = name[: -len(".ipynb")] if name.endswith(".ipynb") else name
    stem = re.sub(r"[^A-Za-z0-9._ -]+", "_", stem).strip(" .") or "notebook"
    if not stem[0].isalnum():
        stem = "n" + stem
    return f"{stem[:180]}.ipynb"


def _default_out(notebook: Path | None, rows: TraceRows) -> Path:
    if notebook is not None:
        stem = (
            notebook.name[: -len(".ipynb")] if notebook.name.endswith(".ipynb") else notebook.stem
        )
        return notebook.with_name(f"{stem}.rlam.zip")
    name = rows.runs[0]["name"] if len(rows.runs) == 1 else f"{len(rows.runs)}-runs"
    return Path.cwd() / f"rlam-{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}.zip"
