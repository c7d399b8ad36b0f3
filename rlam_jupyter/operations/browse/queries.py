"""The trace browser's questions, as DuckDB queries over the documented views.

Shared by the REST API (sidebar) and the inline anywidget browser, so both show the
same data. Every function takes an open ``connect()`` connection and returns plain
JSON-ready values (timestamps as ISO strings, JSON columns parsed).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from rlam_jupyter.errors import UnknownRunError
from rlam_jupyter.operations.browse.rows import NotFoundError, Row, rows
from rlam_jupyter.store import catalog
from rlam_jupyter.store.catalog import Connection
from rlam_jupyter.store.index.lineage import ForkLink, fork_chain, fork_parents
from rlam_jupyter.store.schema import decode_json_column

MAX_PAGE = 500
"""Largest page of steps one request may ask for (the sidebar asks for 100)."""

PROBLEM_STATUSES = ("failed", "rejected")

STEP_SUMMARY_COLUMNS = (
    "seq, step_id, run_id, action, status, duration_ms, seed, cached_from, outputs, "
    "error_type, error_message, recovers, determinism, started_at"
)


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


__all__ = [
    "MAX_PAGE",
    "NotFoundError",
    "Row",
    "lineage",
    "resolve_run",
    "rows",
    "run",
    "runs",
    "step_index",
    "step_positions",
    "steps_page",
]
