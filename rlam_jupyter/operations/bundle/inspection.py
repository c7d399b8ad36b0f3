"""What the static checks of a bundle fill in: one :class:`Check` per concern, and the
:class:`Inspection` that carries them with everything read from the zip.

The checkers (``check_*`` modules beside this one) each add their check and leave
what they read (manifest, tables, objects, parsed entries) for the checks after them
and for ``import``, so nothing is read twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from rlam_jupyter.operations.bundle import format as fmt
from rlam_jupyter.operations.bundle.archive import SafeArchive
from rlam_jupyter.operations.bundle.problems import Problem
from rlam_jupyter.operations.bundle.trace_rows import TraceRows

OK, FAILED, SKIPPED, INFO = "ok", "failed", "skipped", "info"


@dataclass
class Check:
    """One line of the verification report."""

    name: str
    status: str
    summary: str
    problems: list[Problem] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "summary": self.summary,
            "problems": [{"file": p.file, "problem": p.problem} for p in self.problems],
            "details": self.details,
        }


@dataclass
class Inspection:
    """What was read from a bundle and what the checks found."""

    path: Path
    checks: list[Check] = field(default_factory=list)
    archive: SafeArchive | None = None
    manifest: fmt.Manifest | None = None
    manifest_hash: str = ""
    tables: dict[str, pa.Table] = field(default_factory=dict)
    rows: TraceRows | None = None
    objects: dict[str, str] = field(default_factory=dict)
    """Object entry → its recorded hash (only entries whose bytes checked out)."""
    contents: dict[str, Any] = field(default_factory=dict)
    """Parsed JSON entries and raw Parquet bytes, kept for the later checks and import."""
    env_differences: list[tuple[str, Any, Any]] = field(default_factory=list)
    reexecution: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != FAILED for c in self.checks)

    @property
    def problems(self) -> list[Problem]:
        return [p for c in self.checks if c.status == FAILED for p in c.problems]

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()
