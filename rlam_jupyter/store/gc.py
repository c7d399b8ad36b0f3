"""Garbage collection of the object store: delete objects no run references.

An object is kept when any artifact record of any run (journal or Parquet) names
it, and also when it is younger than a grace period: a kernel writes an output's
bytes a moment before it records the artifact, and touches an existing object when
a new step reuses it, so a recent object may be referenced by a record not yet written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rlam_jupyter.store.catalog import connect
from rlam_jupyter.store.resolve import StoreRef, resolve_store

GRACE_S = 3600.0
"""Objects younger than this are never removed."""


@dataclass
class GcReport:
    """What :func:`gc` removed (or would remove with ``dry_run``)."""

    removed: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    kept: int = 0
    recent: int = 0
    """Unreferenced objects kept because they are younger than the grace period."""
    dry_run: bool = False
    journal_problems: int = 0

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        text = (
            f"{verb} {len(self.removed)} unreferenced object(s), "
            f"{self.bytes_freed / 1e6:.1f} MB; kept {self.kept} referenced"
        )
        if self.recent:
            text += f" and {self.recent} recent unreferenced"
        if self.journal_problems:
            text += (
                f"; note: {self.journal_problems} unreadable journal record(s) "
                "(see the journal_problems table)"
            )
        return text


def gc(
    store: StoreRef = None,
    *,
    dry_run: bool = False,
    grace_s: float = GRACE_S,
) -> GcReport:
    """Remove objects that no artifact of any run references; never a referenced one."""
    layout = resolve_store(store)
    report = GcReport(dry_run=dry_run)
    con = connect(layout)
    try:
        referenced = {
            str(row[0])
            for row in con.execute(
                "SELECT DISTINCT object_path FROM _artifacts_all WHERE object_path IS NOT NULL"
            ).fetchall()
        }
        problems = con.execute("SELECT count(*) FROM journal_problems").fetchone()
        report.journal_problems = int(problems[0]) if problems else 0
    finally:
        con.close()
    if not layout.objects_dir.is_dir():
        return report
    cutoff = time.time() - grace_s
    for shard in sorted(layout.objects_dir.iterdir()):
        if not shard.is_dir():
            continue
        for path in sorted(shard.iterdir()):
            relative = path.relative_to(layout.root).as_posix()
            if relative in referenced:
                report.kept += 1
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if stat.st_mtime > cutoff:
                report.recent += 1
                continue
            report.removed.append(relative)
            report.bytes_freed += stat.st_size
            if not dry_run:
                path.unlink(missing_ok=True)
    return report
