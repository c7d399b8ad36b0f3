"""An artifact, a stored figure's image, a run's graph and environment, and the action
schemas the fork form offers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rlam_jupyter.operations.browse.queries import run
from rlam_jupyter.operations.browse.rows import NotFoundError, Row, rows
from rlam_jupyter.store.catalog import Connection
from rlam_jupyter.store.objects import ObjectStore
from rlam_jupyter.store.schema import decode_json_column
from rlam_jupyter.values import figures
from rlam_jupyter.values.digest import FIGURE_KIND


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
        "fingerprint": environment_fingerprint(con, env_id),
        "other_env_ids": others,
    }


def action_schemas() -> dict[str, Row]:
    """JSON Schema of every registered action (what the fork form is generated from)."""
    # lazy: pydantic (~55 ms): the server needs the registry only for the fork form
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


def environment_fingerprint(con: Connection, env_id: str | None) -> Any:
    if not env_id:
        return None
    found = rows(con, "SELECT fingerprint FROM environments WHERE env_id = ? LIMIT 1", [env_id])
    return decode_json_column(found[0]["fingerprint"], None) if found else None
