"""The bundle's layout: entry names, the manifest, and what each trace table must contain.

```
manifest.json                  every other file's blake3 and size; runs; what was left out
notebook/<name>.ipynb          the notebook, each %%rlam cell's metadata naming its run/steps
trace/<table>.parquet          runs, steps (every recorded state), artifacts, edges, ...
objects/xx/<hash>.<kind>       the bytes of every recorded output the runs reference
environment/fingerprints.json  each recorded environment fingerprint, by env id
environment/requirements.lock  pip-freeze style lock of the recorded packages
prov.json                      W3C PROV-JSON of the runs
ro-crate-metadata.json         Workflow Run RO-Crate (one CreateAction per step)
```
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from rlam_jupyter.operations.bundle.problems import BundleError, Problem

FORMAT = "rlam-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PROV = "prov.json"
RO_CRATE = "ro-crate-metadata.json"
FINGERPRINTS = "environment/fingerprints.json"
LOCK = "environment/requirements.lock"
NOTEBOOK_DIR = "notebook/"
TRACE_DIR = "trace/"
OBJECT_KINDS = ("json", "ndarray", "table", "series", "arrow", "pickle", "pickle2", "figure")
OBJECT_NAME = re.compile(
    r"^objects/([0-9a-f]{2})/(\1[0-9a-f]{62})\.(" + "|".join(OBJECT_KINDS) + r")$"
)
"""An object entry: the folder is the hash's first two hex digits, the suffix its kind."""
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
"""A run id names a journal folder on import: nothing else may get near a path."""
NOTEBOOK_NAME = re.compile(r"^notebook/[A-Za-z0-9][A-Za-z0-9._ -]{0,200}\.ipynb$")

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "runs": ("run_id", "name", "seed", "status", "event_no"),
    "steps": ("run_id", "step_id", "seq", "action", "status", "event_no"),
    "artifacts": ("artifact_id", "run_id", "step_id", "name", "kind", "object_path"),
    "edges": ("run_id", "src", "dst", "type"),
    "environments": ("env_id", "run_id", "fingerprint"),
    "llm_calls": ("call_id", "run_id"),
    "approvals": ("run_id", "step_id", "decision"),
}
"""Columns a trace table cannot do without; others may be missing in older bundles."""


def trace_entry(table: str) -> str:
    return f"{TRACE_DIR}{table}.parquet"


def json_bytes(value: Any) -> bytes:
    """The one JSON encoding used in bundles: sorted keys, compact (C encoder: no indent)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return (text + "\n").encode()


@dataclass(frozen=True)
class FileEntry:
    path: str
    blake3: str
    bytes: int


@dataclass(frozen=True)
class Manifest:
    """What the exporter promised: the files, their hashes, the runs and what was left out."""

    files: dict[str, FileEntry]
    runs: list[dict[str, Any]]
    schema_version: int
    objects_included: bool
    llm_content_included: bool
    notebook: str | None
    producer: str

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "schema_version": self.schema_version,
            "producer": self.producer,
            "runs": self.runs,
            "notebook": self.notebook,
            "objects_included": self.objects_included,
            "llm_content_included": self.llm_content_included,
            "files": [
                {"path": f.path, "blake3": f.blake3, "bytes": f.bytes}
                for f in sorted(self.files.values(), key=lambda f: f.path)
            ],
        }

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        """Parse and shape-check a manifest; raises :class:`BundleError` naming the flaw."""

        def bad(problem: str) -> BundleError:
            return BundleError([Problem(MANIFEST, problem)])

        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad(f"not valid JSON ({exc})") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise bad(f"not an rlam bundle manifest (format must be {FORMAT!r})")
        version = raw.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise bad(
                f"bundle format version {version!r}; this rlam-jupyter reads up to "
                f"{FORMAT_VERSION} (upgrade with `pip install -U rlam-jupyter`)"
            )
        files_raw = raw.get("files")
        if not isinstance(files_raw, list):
            raise bad("'files' must be a list")
        files: dict[str, FileEntry] = {}
        for item in files_raw:
            if not (
                isinstance(item, dict)
                and isinstance(item.get("path"), str)
                and isinstance(item.get("blake3"), str)
                and re.fullmatch(r"[0-9a-f]{64}", item["blake3"])
                and isinstance(item.get("bytes"), int)
                and item["bytes"] >= 0
            ):
                raise bad(f"malformed file entry {str(item)[:120]}")
            if item["path"] in files:
                raise bad(f"file {item['path']!r} listed twice")
            files[item["path"]] = FileEntry(item["path"], item["blake3"], item["bytes"])
        runs = raw.get("runs")
        if not isinstance(runs, list) or not all(
            isinstance(r, dict) and isinstance(r.get("run_id"), str) for r in runs
        ):
            raise bad("'runs' must be a list of objects with a run_id")
        notebook = raw.get("notebook")
        if notebook is not None and not isinstance(notebook, str):
            raise bad("'notebook' must be a path or null")
        schema_version = raw.get("schema_version")
        if not isinstance(schema_version, int):
            raise bad("'schema_version' must be an integer")
        return cls(
            files=files,
            runs=runs,
            schema_version=schema_version,
            objects_included=bool(raw.get("objects_included", True)),
            llm_content_included=bool(raw.get("llm_content_included", True)),
            notebook=notebook,
            producer=str(raw.get("producer", "")),
        )
