"""The trace browser's questions, as DuckDB queries over the documented views.

Shared by the REST API (sidebar) and the inline anywidget browser, so both show the
same data. Every function takes an open ``connect()`` connection and returns plain
JSON-ready values (timestamps as ISO strings, JSON columns parsed).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from rlam_jupyter.errors import RlamError, UnknownRunError
from rlam_jupyter.store import catalog
from rlam_jupyter.store.catalog import Connection
from rlam_jupyter.store.index.lineage import ForkLink, fork_chain, fork_parents
from rlam_jupyter.store.objects import ObjectStore
from rlam_jupyter.store.schema import decode_json_column
from rlam_jupyter.values import figures
from rlam_jupyter.values.digest import FIGURE_KIND

Row = dict[str, Any]

MAX_PAGE = 500
"""Largest page of steps one request may ask for (the sidebar asks for 100)."""

PROBLEM_STATUSES = ("failed", "rejected")

STEP_SUMMARY_COLUMNS = (
    "seq, step_id, run_id, action, status, duration_ms, seed, cached_from, outputs, "
    "error_type, error_message, recovers, determinism, started_at"
)


class NotFoundError(RlamError):
    """The run, step or artifact asked for is not in the store."""


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def rows(con: Connection, sql: str, params: Sequence[Any] = ()) -> list[Row]:
    """Result rows as JSON-ready dicts."""
    cursor = con.execute(sql, list(params))
    names = [d[0] for d in cursor.description or ()]
    return [{k: _plain(v) for k, v in zip(names, row, strict=True)} for row in cursor.fetchall()]


def runs(con: Connection) -> list[Row]:
    """Every run with its step counts; forks carry ``parent_run_id`` and ``fork_seq``.

    ``steps`` counts the run's own steps; ``shared`` the prefix a fork inherits.
    """
    result = rows(
        con,
        """
        SELECT r.run_id, r.name, r.seed, r.status, r.parent_run_id, r.fork_seq, r.notebook,
               r.created_at, r.ended_at, r.env_id,
               count(s.step_id) AS steps,
               count(*) FILTER (WHERE s.status = 'failed') AS failed,
               count(*) FILTER (WHERE s.status = 'rejected') AS rejected,
               count(*) FILTER (WHERE s.status = 'interrupted') AS interrupted,
               count(*) FILTER (WHERE s.status = 'cached') AS cached,
               max(s.seq) AS last_seq
        FROM runs r LEFT JOIN steps s USING (run_id)
        GROUP BY ALL
        ORDER BY r.created_at, r.run_id
        """,
    )
    for run in result:
        run["shared"] = max(0, int(run["fork_seq"]) - 1) if run["fork_seq"] else 0
    return result


def resolve_run(con: Connection, ref: str) -> str:
    """The store's run resolution (id, name or unique prefix), as a 404 when unknown."""
    try:
        return catalog.resolve_run(con, ref)
    except UnknownRunError as exc:
        raise NotFoundError(str(exc)) from None


def run(con: Connection, run_id: str) -> Row:
    found = rows(con, "SELECT * EXCLUDE (event_no) FROM runs WHERE run_id = ?", [run_id])
    if not found:
        raise NotFoundError(f"no run {run_id!r} in this store")
    return found[0]


def step_positions(con: Connection) -> pa.Table:
    """``run_id, seq, status, action`` of every step in the store, one Arrow read:
    what :func:`step_index` cuts each run's lineage from."""
    return con.sql("SELECT run_id, seq, status, action FROM steps").to_arrow_table()


def step_index(con: Connection, run_id: str, positions: pa.Table | None = None) -> pa.Table:
    """Where each of a run's steps lives (inherited prefix included, as ``run_steps``),
    sorted by seq: ``run_id`` (the run that recorded it), ``seq``, ``status``,
    ``action``, ``inherited_depth``.

    Filters, counts and page positions are cut from this Arrow table, and a page reads
    only its own rows from ``steps``. ``positions`` (:func:`step_positions`) saves the
    scan when the caller keeps it.
    """
    if positions is None:
        positions = step_positions(con)
    parts = []
    for depth, (owner, upto) in enumerate(lineage(con, run_id)):
        mask = pc.equal(positions["run_id"], owner)
        if upto is not None:
            mask = pc.and_(mask, pc.less(positions["seq"], upto))
        part = positions.filter(mask)
        parts.append(
            part.append_column(
                "inherited_depth", pa.array([depth] * part.num_rows, type=pa.int32())
            )
        )
    return pa.concat_tables(parts).sort_by("seq")


def _fetch_steps(con: Connection, located: pa.Table, columns: str) -> list[Row]:
    """The ``steps`` rows of ``located`` (``run_id``, ``seq``, ``inherited_depth``), in order."""
    if located.num_rows == 0:
        return []
    by_run: dict[str, list[int]] = {}
    for owner, seq in zip(located["run_id"].to_pylist(), located["seq"].to_pylist(), strict=True):
        by_run.setdefault(str(owner), []).append(int(seq))
    found: dict[tuple[str, int], Row] = {}
    for owner, seqs in by_run.items():
        for row in rows(
            con,
            f"SELECT {columns} FROM steps JOIN (SELECT unnest(?) AS seq) USING (seq) "
            "WHERE run_id = ?",
            [seqs, owner],
        ):
            found[(row["run_id"], row["seq"])] = row
    result = []
    for owner, seq, depth in zip(
        located["run_id"].to_pylist(),
        located["seq"].to_pylist(),
        located["inherited_depth"].to_pylist(),
        strict=True,
    ):
        fetched = found.get((owner, seq))
        if fetched is not None:
            result.append({**fetched, "inherited": bool(depth)})
    return result


def steps_page(
    con: Connection,
    run_id: str,
    *,
    offset: int = 0,
    limit: int = 100,
    statuses: Sequence[str] = (),
    actions: Sequence[str] = (),
    index: pa.Table | None = None,
) -> Row:
    """One page of a run's steps (a fork's inherited prefix included), in ``seq`` order.

    ``total`` counts the steps matching the filters; ``counts`` counts every status of
    the whole run, so a front end can show "3 failed" while showing a filtered page.
    ``index`` is the run's :func:`step_index` when the caller keeps it.
    """
    run(con, run_id)
    if offset < 0 or not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"offset must be ≥ 0 and limit between 1 and {MAX_PAGE}")
    if index is None:
        index = step_index(con, run_id)
    selected = index
    if statuses:
        selected = selected.filter(pc.is_in(selected["status"], pa.array(list(statuses))))
    if actions:
        selected = selected.filter(pc.is_in(selected["action"], pa.array(list(actions))))
    page = _fetch_steps(con, selected.slice(offset, limit), STEP_SUMMARY_COLUMNS)
    for step in page:
        step["outputs"] = decode_json_column(step["outputs"], {})
    counts = pc.value_counts(index["status"]).to_pylist()
    return {
        "run_id": run_id,
        "offset": offset,
        "limit": limit,
        "total": selected.num_rows,
        "counts": {str(c["values"]): int(c["counts"]) for c in counts},
        "actions": sorted(str(a) for a in pc.unique(index["action"]).to_pylist() if a),
        "steps": page,
    }


def lineage(con: Connection, run_id: str) -> list[ForkLink]:
    """The runs whose steps ``run_id`` sees, with the seq each is cut at (exclusive):
    the run itself, then its parent before the fork point, and so on (as ``run_steps``)."""
    runs = rows(con, "SELECT run_id, parent_run_id, fork_seq FROM runs")
    return fork_chain(run_id, fork_parents(runs).get)


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
        "fingerprint": _fingerprint(con, detail.get("env_id")),
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


def _fingerprint(con: Connection, env_id: str | None) -> Any:
    if not env_id:
        return None
    found = rows(con, "SELECT fingerprint FROM environments WHERE env_id = ? LIMIT 1", [env_id])
    return decode_json_column(found[0]["fingerprint"], None) if found else None


def artifact(con: Connection, artifact_id: str) -> Row:
    """An artifact's recorded preview and type, and every step that produced it."""
    found = rows(
        con,
        "SELECT artifact_id, run_id, step_id, name, kind, python_type, size_bytes, preview, "
        "restorable, note FROM artifacts WHERE artifact_id = ? ORDER BY step_id",
        [artifact_id],
    )
    if not found:
        raise NotFoundError(f"no artifact {artifact_id!r} in this store")
    first = dict(found[0])
    first["produced_by"] = [
        {"run_id": r["run_id"], "step_id": r["step_id"], "name": r["name"]} for r in found
    ]
    return first


_DIGEST = re.compile(r"[0-9a-f]{64}")


def artifact_image(con: Connection, store_root: Path, artifact_id: str) -> bytes:
    """The PNG rendering of a figure artifact, checked against its hash (so an altered
    object is refused, not shown). The file is named by the hash, never by a trace column."""
    if not _DIGEST.fullmatch(artifact_id):
        raise NotFoundError(f"no artifact {artifact_id!r} in this store")
    stored = con.execute(
        "SELECT 1 FROM artifacts WHERE artifact_id = ? AND kind = ? AND object_path IS NOT NULL "
        "LIMIT 1",
        [artifact_id, FIGURE_KIND],
    ).fetchone()
    if stored is None:
        raise NotFoundError(f"no stored figure {artifact_id[:12]} in this store")
    path = store_root / ObjectStore.relative_path(FIGURE_KIND, artifact_id)
    try:
        payload = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"the object of figure {artifact_id[:12]} is missing") from None
    if figures.stored_digest(payload) != artifact_id:
        raise ValueError(f"the stored figure {artifact_id[:12]} does not match its hash (altered)")
    return figures.unpack(payload).png


def graph(con: Connection, run_id: str) -> Row:
    """The provenance graph of a run (inherited prefix included): step and artifact
    nodes, typed edges (``used``, ``generated``, ``derived_from``, ``recovers``, ...)."""
    run(con, run_id)
    step_nodes = rows(
        con,
        "SELECT step_id AS id, 'step' AS kind, seq, action, status, run_id "
        "FROM run_steps(?) ORDER BY seq",
        [run_id],
    )
    step_ids = [n["id"] for n in step_nodes]
    edge_rows = rows(
        con,
        """
        SELECT DISTINCT src, dst, type, role FROM edges
        WHERE list_contains(?, src) OR list_contains(?, dst) OR src = ?
        ORDER BY type, src, dst
        """,
        [step_ids, step_ids, run_id],
    )
    artifact_ids = sorted(
        {
            e["dst"] if e["src"] in step_ids else e["src"]
            for e in edge_rows
            if e["type"] in ("used", "generated")
        }
    )
    edge_rows += rows(
        con,
        "SELECT DISTINCT src, dst, type, role FROM edges "
        "WHERE type = 'derived_from' AND list_contains(?, src) AND list_contains(?, dst) "
        "ORDER BY src, dst",
        [artifact_ids, artifact_ids],
    )
    artifact_nodes = rows(
        con,
        "SELECT DISTINCT ON (artifact_id) artifact_id AS id, 'artifact' AS kind, name, "
        "python_type FROM artifacts WHERE list_contains(?, artifact_id) ORDER BY artifact_id",
        [artifact_ids],
    )
    return {"run_id": run_id, "nodes": step_nodes + artifact_nodes, "edges": edge_rows}


def environment(con: Connection, run_id: str) -> Row:
    """The run's environment fingerprint, and any other environment its steps ran in."""
    env_id = run(con, run_id).get("env_id")
    others = [
        r["env_id"]
        for r in rows(
            con,
            "SELECT DISTINCT env_id FROM run_steps(?) WHERE env_id IS NOT NULL AND env_id <> ? "
            "ORDER BY env_id",
            [run_id, env_id or ""],
        )
    ]
    return {
        "run_id": run_id,
        "env_id": env_id,
        "fingerprint": _fingerprint(con, env_id),
        "other_env_ids": others,
    }


def action_schemas() -> dict[str, Row]:
    """JSON Schema of every registered action (what the fork form is generated from)."""
    from rlam_jupyter.actions.default_registry import registry

    return {
        name: {
            "description": spec.description,
            "determinism": spec.determinism,
            "inputs": list(spec.inputs),
            "outputs": list(spec.outputs),
            "params_schema": spec.params_schema(),
        }
        for name, spec in registry().items()
    }


__all__ = [
    "MAX_PAGE",
    "NotFoundError",
    "action_schemas",
    "artifact",
    "environment",
    "graph",
    "lineage",
    "resolve_run",
    "runs",
    "step",
    "step_index",
    "step_positions",
    "steps_page",
]
