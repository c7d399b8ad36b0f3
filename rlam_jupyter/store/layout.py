"""Where things live inside a store folder (``.rlam/`` by default).

Kept in one module so writers, readers, compaction and export agree on paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIRNAME = ".rlam"


@dataclass(frozen=True)
class StoreLayout:
    """Paths of one store; creating the object touches nothing on disk."""

    root: Path

    @property
    def journal_dir(self) -> Path:
        return self.root / "journal"

    @property
    def parquet_dir(self) -> Path:
        return self.root / "parquet"

    @property
    def objects_dir(self) -> Path:
        return self.root / "objects"

    @property
    def cache_dir(self) -> Path:
        """Cache entries: ``cache/xx/<cache key>.json`` → the outputs a step produced."""
        return self.root / "cache"

    @property
    def index_dir(self) -> Path:
        """Per-run step indexes (derived from the journal; rebuilt when stale)."""
        return self.root / "index"

    def run_journal_dir(self, run_id: str) -> Path:
        return self.journal_dir / run_id

    def journal_file(self, run_id: str, writer_id: str) -> Path:
        return self.run_journal_dir(run_id) / f"{writer_id}.jsonl"

    def journal_files(self) -> list[Path]:
        if not self.journal_dir.is_dir():
            return []
        return sorted(self.journal_dir.glob("*/*.jsonl"))
