"""JSON-ready rows from DuckDB, and the error every browser question raises for what is absent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rlam_jupyter.errors import RlamError
from rlam_jupyter.store.catalog import Connection

Row = dict[str, Any]


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
