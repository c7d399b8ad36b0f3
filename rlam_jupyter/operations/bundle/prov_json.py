"""W3C PROV-JSON of a bundle's runs: what was done, with what, by whom.

Steps (and runs) are activities, artifacts are entities, the person at the notebook,
each LLM that proposed steps and the rlam engine are agents. Relations: ``used`` and
``wasGeneratedBy`` from the trace's edges, ``wasDerivedFrom`` between artifacts,
``wasAssociatedWith`` (engine as executor, person or LLM as proposer) and
``wasInformedBy`` (a step that used another step's output, a recovery and the
failure it answers, a fork and its parent run). Ids are derived from the trace, so
the document is the same every time.
"""

from __future__ import annotations

import re
from typing import Any

from rlam_jupyter.operations.bundle.trace_rows import TraceRows, end_time, iso

NAMESPACES = {
    "rlam": "https://w3id.org/rlam-jupyter/terms#",
    "run": "urn:rlam:run:",
    "step": "urn:rlam:step:",
    "artifact": "urn:rlam:artifact:",
    "agent": "urn:rlam:agent:",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}
USER = "agent:user"
ENGINE = "agent:rlam-jupyter"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def step_qname(step_id: str) -> str:
    return f"step:{step_id}"


def _q(name: str) -> dict[str, str]:
    """A qualified-name value (PROV-JSON types it explicitly, else it is a plain string)."""
    return {"$": name, "type": "prov:QUALIFIED_NAME"}


def _int(value: int) -> dict[str, Any]:
    return {"$": value, "type": "xsd:long"}


def _drop_none(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if v is not None and v != ""}


def llm_agent(model: str | None) -> str:
    return f"agent:llm-{_UNSAFE.sub('-', model or 'unknown')}"


def build_prov(rows: TraceRows, producer: str) -> dict[str, Any]:
    """The PROV-JSON document (a dict ready for :func:`format.json_bytes`)."""
    activity: dict[str, Any] = {}
    entity: dict[str, Any] = {}
    agent: dict[str, Any] = {
        USER: {"prov:type": _q("prov:Person"), "prov:label": "person working in the notebook"},
        ENGINE: {
            "prov:type": _q("prov:SoftwareAgent"),
            "prov:label": producer,
        },
    }
    relations: dict[str, dict[str, Any]] = {
        "used": {},
        "wasGeneratedBy": {},
        "wasDerivedFrom": {},
        "wasAssociatedWith": {},
        "wasInformedBy": {},
    }

    def relate(kind: str, prefix: str, attrs: dict[str, Any]) -> None:
        bucket = relations[kind]
        bucket[f"_:{prefix}{len(bucket) + 1}"] = attrs

    for run in rows.runs:
        activity[f"run:{run['run_id']}"] = _drop_none(
            {
                "prov:type": _q("rlam:Run"),
                "prov:label": run["name"],
                "prov:startTime": iso(run.get("created_at")),
                "prov:endTime": iso(run.get("ended_at")),
                "rlam:seed": _int(run["seed"]) if run.get("seed") is not None else None,
                "rlam:status": run.get("status"),
                "rlam:environment": run.get("env_id"),
            }
        )
        if run.get("parent_run_id"):
            relate(
                "wasInformedBy",
                "i",
                {
                    "prov:informed": f"run:{run['run_id']}",
                    "prov:informant": f"run:{run['parent_run_id']}",
                    "prov:type": _q("rlam:ForkedFrom"),
                    "rlam:forkSeq": str(run.get("fork_seq")),
                },
            )

    for artifact_id, art in sorted(rows.artifacts.items()):
        entity[f"artifact:{artifact_id}"] = _drop_none(
            {
                "prov:type": _q("rlam:Artifact"),
                "prov:label": art.get("name"),
                "rlam:kind": art.get("kind"),
                "rlam:pythonType": art.get("python_type"),
                "rlam:sizeBytes": _int(art["size_bytes"])
                if art.get("size_bytes") is not None
                else None,
                "rlam:blake3": artifact_id,
                "rlam:objectPath": art.get("object_path"),
            }
        )

    for step in rows.steps:
        qname = step_qname(step["step_id"])
        activity[qname] = _drop_none(
            {
                "prov:type": _q("rlam:Step"),
                "prov:label": f"{step['seq']} {step['action']}",
                "prov:startTime": iso(step.get("started_at")),
                "prov:endTime": end_time(step),
                "rlam:run": _q(f"run:{step['run_id']}"),
                "rlam:seq": _int(step["seq"]),
                "rlam:action": step["action"],
                "rlam:actionVersion": step.get("action_version"),
                "rlam:determinism": step.get("determinism"),
                "rlam:status": step["status"],
                "rlam:seed": _int(step["seed"]) if step.get("seed") is not None else None,
                "rlam:params": step.get("params"),
                "rlam:source": step.get("source_text"),
                "rlam:errorType": step.get("error_type"),
                "rlam:errorMessage": step.get("error_message"),
                "rlam:cachedFrom": step.get("cached_from"),
                "rlam:cellId": step.get("cell_id"),
                "rlam:cellSourceHash": step.get("cell_source_hash"),
            }
        )
        relate(
            "wasAssociatedWith",
            "a",
            {"prov:activity": qname, "prov:agent": ENGINE, "prov:role": _q("rlam:executor")},
        )
        proposer = USER
        if step.get("proposed_by") or step.get("origin") == "agent":
            call = rows.llm_calls.get(step.get("proposed_by") or "")
            proposer = llm_agent(call.get("model") if call else None)
            agent.setdefault(
                proposer,
                _drop_none(
                    {
                        "prov:type": _q("prov:SoftwareAgent"),
                        "prov:label": f"LLM {call.get('model')}" if call else "agent proposer",
                        "rlam:provider": call.get("provider") if call else None,
                        "rlam:baseUrl": call.get("base_url") if call else None,
                    }
                ),
            )
        relate(
            "wasAssociatedWith",
            "a",
            {"prov:activity": qname, "prov:agent": proposer, "prov:role": _q("rlam:proposer")},
        )

    generated_by: dict[str, str] = {}
    for edge in rows.edges:
        if edge["type"] == "generated" and edge["src"] in rows.step_ids:
            generated_by.setdefault(edge["dst"], edge["src"])
    informed: set[tuple[str, str, str]] = set()
    for edge in rows.edges:
        kind, src, dst, role = edge["type"], edge["src"], edge["dst"], edge.get("role")
        if kind == "used":
            relate(
                "used",
                "u",
                _drop_none(
                    {
                        "prov:activity": step_qname(src),
                        "prov:entity": f"artifact:{dst}",
                        "prov:role": role,
                    }
                ),
            )
            producer_step = generated_by.get(dst)
            if producer_step and producer_step != src:
                informed.add((src, producer_step, "rlam:UsedOutput"))
        elif kind == "generated":
            relate(
                "wasGeneratedBy",
                "g",
                _drop_none(
                    {
                        "prov:entity": f"artifact:{dst}",
                        "prov:activity": step_qname(src),
                        "prov:role": role,
                    }
                ),
            )
        elif kind == "derived_from":
            relate(
                "wasDerivedFrom",
                "d",
                _drop_none(
                    {
                        "prov:generatedEntity": f"artifact:{src}",
                        "prov:usedEntity": f"artifact:{dst}",
                        "prov:activity": step_qname(generated_by[src])
                        if src in generated_by
                        else None,
                    }
                ),
            )
        elif kind == "recovers":
            informed.add((src, dst, "rlam:Recovers"))
    for src, dst, kind in sorted(informed):
        relate(
            "wasInformedBy",
            "i",
            {
                "prov:informed": step_qname(src),
                "prov:informant": step_qname(dst),
                "prov:type": _q(kind),
            },
        )
    document: dict[str, Any] = {
        "prefix": dict(NAMESPACES),
        "activity": activity,
        "entity": entity,
        "agent": agent,
    }
    document.update({kind: bucket for kind, bucket in relations.items() if bucket})
    return document
