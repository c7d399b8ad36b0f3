"""``fork_tree(run)``: the whole tree of forks a run belongs to, from its root down, read
with one recursive query of the store's views."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlam_jupyter.operations.replay.context import open_context, resolve
from rlam_jupyter.store.resolve import StoreRef

if TYPE_CHECKING:
    import pandas as pd


def fork_tree(run: str, store: StoreRef = None) -> pd.DataFrame:
    """The whole fork tree that ``run`` belongs to, in tree order, one row per run:
    ``run_id, name, parent_run_id, fork_seq, depth, status, steps`` (own steps only)."""
    ctx = open_context(store)
    try:
        run_id = resolve(ctx, run)
        frame: pd.DataFrame = (
            ctx.source.connection()
            .execute(
                """
            WITH RECURSIVE up(run_id, parent_run_id, d) AS (
                SELECT run_id, parent_run_id, 0 FROM runs WHERE run_id = $run
                UNION ALL
                SELECT r.run_id, r.parent_run_id, up.d + 1
                FROM runs r JOIN up ON r.run_id = up.parent_run_id WHERE up.d < 10000
            ),
            root AS (SELECT run_id FROM up ORDER BY d DESC LIMIT 1),
            down(run_id, depth, path) AS (
                SELECT run_id, 0, run_id FROM root
                UNION ALL
                SELECT r.run_id, down.depth + 1, down.path || '/' || r.run_id
                FROM runs r JOIN down ON r.parent_run_id = down.run_id WHERE down.depth < 10000
            )
            SELECT r.run_id, r.name, r.parent_run_id, r.fork_seq, down.depth, r.status,
                   (SELECT count(*) FROM steps s WHERE s.run_id = r.run_id) AS steps,
                   r.run_id = $run AS is_selected
            FROM down JOIN runs r USING (run_id)
            ORDER BY down.path
            """,
                {"run": run_id},
            )
            .df()
        )
    finally:
        ctx.source.close()
    return frame
