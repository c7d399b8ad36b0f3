"""Workflow Run RO-Crate metadata (Process Run Crate profile): one CreateAction per step.

Each step is a ``CreateAction`` whose ``instrument`` is the action (a
``SoftwareApplication`` named with its version and source hash), ``object`` the
artifacts it used, ``result`` the artifacts it generated, ``actionStatus`` completed
or failed, and ``error`` the recorded failure or refusal. Artifacts whose bytes are
in the bundle are ``File`` data entities; the others are contextual entities
identified by their hash.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from rlam_jupyter.operations.bundle.trace_rows import OK_STATUSES, TraceRows, end_time, iso

CONTEXT = "https://w3id.org/ro/crate/1.1/context"
PROCESS_RUN_CRATE = "https://w3id.org/ro/wfrun/process/0.5"
COMPLETED = "http://schema.org/CompletedActionStatus"
FAILED = "http://schema.org/FailedActionStatus"
POTENTIAL = "http://schema.org/PotentialActionStatus"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_FORMATS = {
    ".ipynb": "application/x-ipynb+json",
    ".json": "application/json",
    ".parquet": "application/vnd.apache.parquet",
    ".lock": "text/plain",
}


def _ref(identifier: str) -> dict[str, str]:
    return {"@id": identifier}


def step_entity_id(step_id: str) -> str:
    return f"#step-{step_id}"


def build_ro_crate(
    rows: TraceRows,
    files: dict[str, tuple[str, int]],
    *,
    producer: str,
    notebook: str | None,
) -> dict[str, Any]:
    """The crate's JSON-LD. ``files`` maps bundle entry → (blake3, size) for data entities."""
    graph: list[dict[str, Any]] = []
    run_names = ", ".join(r["name"] for r in rows.runs)
    published = max(
        (iso(r.get("ended_at") or r.get("created_at")) or "" for r in rows.runs), default=""
    )
    data_files = sorted(files)
    graph.append(
        {
            "@id": "ro-crate-metadata.json",
            "@type": "CreativeWork",
            "about": _ref("./"),
            "conformsTo": _ref("https://w3id.org/ro/crate/1.1"),
        }
    )
    root: dict[str, Any] = {
        "@id": "./",
        "@type": "Dataset",
        "name": f"R-LAM provenance bundle: {run_names}",
        "description": "A notebook with the recorded, schema-checked steps of its R-LAM runs: "
        "trace tables, step outputs, environment and provenance.",
        "datePublished": published or "1970-01-01T00:00:00Z",
        "license": _ref("https://spdx.org/licenses/CC-BY-4.0"),
        "conformsTo": _ref(PROCESS_RUN_CRATE),
        "hasPart": [_ref(f) for f in [*data_files, "manifest.json"]],
        "mentions": [_ref(step_entity_id(s["step_id"])) for s in rows.steps],
    }
    if notebook:
        root["mainEntity"] = _ref(notebook)
    graph.append(root)
    graph.append(
        {
            "@id": PROCESS_RUN_CRATE,
            "@type": "CreativeWork",
            "name": "Process Run Crate",
            "version": "0.5",
        }
    )
    graph.append(
        {
            "@id": "#rlam-jupyter",
            "@type": "SoftwareApplication",
            "name": producer,
            "url": "https://github.com/rlam-jupyter/rlam-jupyter",
        }
    )
    graph.append({"@id": "#user", "@type": "Person", "name": "person working in the notebook"})
    for path in data_files:
        blake3, size = files[path]
        suffix = path[path.rfind(".") :] if "." in path else ""
        entity: dict[str, Any] = {
            "@id": path,
            "@type": "File",
            "contentSize": str(size),
            "identifier": f"blake3:{blake3}",
        }
        if suffix in _FORMATS:
            entity["encodingFormat"] = _FORMATS[suffix]
        graph.append(entity)
    graph.append(
        {
            "@id": "manifest.json",
            "@type": "File",
            "name": "blake3 hash and size of every other file",
            "encodingFormat": "application/json",
        }
    )
    in_bundle = set(files)
    used: dict[str, list[str]] = defaultdict(list)
    generated: dict[str, list[str]] = defaultdict(list)
    for edge in rows.edges:
        if edge["type"] == "used":
            used[edge["src"]].append(edge["dst"])
        elif edge["type"] == "generated":
            generated[edge["src"]].append(edge["dst"])
    artifact_ids: dict[str, str] = {}
    for artifact_id, art in sorted(rows.artifacts.items()):
        object_path = art.get("object_path")
        if isinstance(object_path, str) and object_path in in_bundle:
            artifact_ids[artifact_id] = object_path
            continue
        artifact_ids[artifact_id] = f"#artifact-{artifact_id}"
        graph.append(
            {
                "@id": f"#artifact-{artifact_id}",
                "@type": "CreativeWork",
                "name": art.get("name"),
                "identifier": f"blake3:{artifact_id}",
                "description": art.get("note")
                or "output recorded by hash; bytes not in the bundle",
            }
        )
    instruments: dict[str, str] = {}
    for step in rows.steps:
        version = step.get("action_version") or step["action"]
        if version not in instruments:
            instruments[version] = f"#action-{_UNSAFE.sub('-', version)}"
            graph.append(
                {
                    "@id": instruments[version],
                    "@type": "SoftwareApplication",
                    "name": step["action"],
                    "version": version,
                }
            )
    for step in rows.steps:
        step_id = step["step_id"]
        status = step["status"]
        action: dict[str, Any] = {
            "@id": step_entity_id(step_id),
            "@type": "CreateAction",
            "name": f"step {step['seq']}: {step['action']} ({status})",
            "instrument": _ref(instruments[step.get("action_version") or step["action"]]),
            "object": [_ref(artifact_ids.get(a, f"#artifact-{a}")) for a in used[step_id]],
            "result": [_ref(artifact_ids.get(a, f"#artifact-{a}")) for a in generated[step_id]],
            "actionStatus": _ref(
                COMPLETED
                if status in OK_STATUSES
                else FAILED
                if status in ("failed", "rejected")
                else POTENTIAL
            ),
            "agent": _ref("#user"),
            "identifier": step_id,
        }
        if step.get("source_text"):
            action["description"] = step["source_text"]
        if step.get("started_at") is not None:
            action["startTime"] = iso(step["started_at"])
        ended = end_time(step)
        if ended:
            action["endTime"] = ended
        if status in ("failed", "rejected"):
            kind = step.get("error_type") or (
                "ProposalRejected" if status == "rejected" else "Error"
            )
            action["error"] = f"{kind}: {step.get('error_message') or ''}".rstrip(": ")
        graph.append(action)
    return {"@context": CONTEXT, "@graph": graph}
