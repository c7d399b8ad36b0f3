"""One step as the browser's detail pane shows it: parameters, where its inputs came from,
its outputs, its error and history, its environment, approvals and LLM call."""

from __future__ import annotations

from typing import Any

from rlam_jupyter.operations.browse.artifacts import environment_fingerprint
from rlam_jupyter.operations.browse.queries import lineage, run
from rlam_jupyter.operations.browse.rows import NotFoundError, Row, rows
from rlam_jupyter.store.catalog import Connection
from rlam_jupyter.store.index.lineage import ForkLink
from rlam_jupyter.store.schema import decode_json_column


def step(con: Connection, run_id: str, seq: int) -> Row:
    """Everything about one step: parameters, where its inputs came from, its outputs
    with previews, its error, its status history, environment, approvals and LLM call."""
    run(con, run_id)
    chain = lineage(con, run_id)
    owner = next(
        (
            r
            for r, upto in chain
            if (upto is None or seq < upto)
            and rows(con, "SELECT 1 AS x FROM steps WHERE run_id = ? AND seq = ?", [r, seq])
        ),
        None,
    )
    if owner is None:
        raise NotFoundError(f"run {run_id} has no step {seq}")
    detail = rows(
        con, "SELECT * EXCLUDE (event_no) FROM steps WHERE run_id = ? AND seq = ?", [owner, seq]
    )[0]
    detail["inherited"] = owner != run_id
    for key, default in (
        ("params", {}),
        ("inputs", {}),
        ("input_names", {}),
        ("outputs", {}),
        ("targets", []),
    ):
        detail[key] = decode_json_column(detail[key], default)
    step_id = detail["step_id"]
    detail["input_links"] = _input_links(con, chain, seq, detail["inputs"], detail["input_names"])
    detail["output_artifacts"] = _output_artifacts(con, detail)
    detail["events"] = rows(
        con,
        "SELECT status, recorded_at, event_no FROM step_events WHERE run_id = ? AND step_id = ? "
        "ORDER BY event_no",
        [owner, step_id],
    )
    detail["recovered_by"] = [
        r["src"]
        for r in rows(
            con,
            "SELECT DISTINCT src FROM edges WHERE type = 'recovers' AND dst = ? ORDER BY src",
            [step_id],
        )
    ]
    detail["approvals"] = rows(
        con,
        "SELECT decision, reason, edited_params, decided_by, decided_at FROM approvals "
        "WHERE step_id = ? ORDER BY event_no",
        [step_id],
    )
    detail["llm_call"] = _llm_call(con, detail.get("proposed_by"))
    run_env = run(con, detail["run_id"]).get("env_id")
    detail["environment"] = {
        "env_id": detail.get("env_id"),
        "same_as_run": detail.get("env_id") == run_env,
        "fingerprint": environment_fingerprint(con, detail.get("env_id")),
    }
    return detail


def _input_links(
    con: Connection,
    chain: list[ForkLink],
    seq: int,
    input_ids: dict[str, Any],
    input_names: dict[str, Any],
) -> list[Row]:
    """For each input: the artifact and the latest earlier step of this run's lineage
    that produced it."""
    if not input_ids:
        return []
    candidates = rows(
        con,
        """
        SELECT a.artifact_id, s.run_id, s.seq, s.step_id, s.action, a.name AS output
        FROM artifacts a JOIN steps s ON a.step_id = s.step_id
        WHERE list_contains(?, a.artifact_id) AND list_contains(?, s.run_id) AND s.seq < ?
        ORDER BY s.seq DESC
        """,
        [list(input_ids.values()), [r for r, _ in chain], seq],
    )
    cut = dict(chain)
    links = []
    for param, artifact_id in input_ids.items():
        producer = next(
            (
                {k: c[k] for k in ("run_id", "seq", "step_id", "action", "output")}
                for c in candidates
                if c["artifact_id"] == artifact_id and _visible(cut[c["run_id"]], c["seq"])
            ),
            None,
        )
        links.append(
            {
                "param": param,
                "name": input_names.get(param, param),
                "artifact_id": artifact_id,
                "producer": producer,
            }
        )
    return links


def _visible(upto: int | None, seq: int) -> bool:
    return upto is None or seq < upto


def _output_artifacts(con: Connection, detail: Row) -> list[Row]:
    outputs: dict[str, str] = detail["outputs"]
    if not outputs:
        return []
    found = {
        r["artifact_id"]: r
        for r in rows(
            con,
            "SELECT DISTINCT ON (artifact_id) artifact_id, kind, python_type, size_bytes, "
            "preview, restorable, note FROM artifacts WHERE list_contains(?, artifact_id)",
            [list(outputs.values())],
        )
    }
    return [
        {"name": name, "artifact_id": artifact_id, **found.get(artifact_id, {})}
        for name, artifact_id in outputs.items()
    ]


def _llm_call(con: Connection, call_id: str | None) -> Row | None:
    if not call_id:
        return None
    found = rows(
        con, "SELECT * EXCLUDE (event_no) FROM llm_calls WHERE call_id = ? LIMIT 1", [call_id]
    )
    if not found:
        return None
    call = found[0]
    call["request"] = decode_json_column(call["request"], call["request"])
    call["response"] = decode_json_column(call["response"], call["response"])
    return call
