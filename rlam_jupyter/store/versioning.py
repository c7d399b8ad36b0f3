"""Schema versions of stored files: refuse what this version cannot read, say how to fix it.

Journal headers, compaction manifests and Parquet files (key ``rlam.schema_version``
in their metadata) all carry :data:`~rlam_jupyter.store.schema.SCHEMA_VERSION`.
Version changes so far only add columns, so every older version reads as is (missing
columns are null); a newer store needs a newer rlam-jupyter.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rlam_jupyter.errors import StoreReadError
from rlam_jupyter.store.schema import SCHEMA_VERSION

PARQUET_VERSION_KEY = b"rlam.schema_version"
PARQUET_TABLE_KEY = b"rlam.table"

OLDEST_READABLE = 0
"""Version 0 is a journal without a header version (the first development format)."""


def check_readable(versions: Iterable[int], where: Path | str) -> None:
    """Raise :class:`StoreReadError` unless every version can be read by this release."""
    found = set(versions)
    if not found:
        return
    newest, oldest = max(found), min(found)
    if newest > SCHEMA_VERSION:
        raise StoreReadError(
            f"the store at {where} was written by a newer rlam-jupyter (schema {newest}; "
            f"this version reads up to {SCHEMA_VERSION}); upgrade with "
            "`pip install -U rlam-jupyter`, then open it again"
        )
    if oldest < OLDEST_READABLE:
        raise StoreReadError(
            f"the store at {where} uses schema {oldest}, older than this rlam-jupyter "
            f"reads (oldest {OLDEST_READABLE}); open it with the release that wrote it and "
            "run `rlam export-parquet DEST`: the exported Parquet files need no rlam to read"
        )


def parquet_metadata(table: str) -> dict[bytes, bytes]:
    """Key-value metadata every Parquet file written by rlam carries."""
    return {PARQUET_VERSION_KEY: str(SCHEMA_VERSION).encode(), PARQUET_TABLE_KEY: table.encode()}
