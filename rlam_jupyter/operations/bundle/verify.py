"""``verify_bundle``: can this bundle be trusted, and do its numbers reproduce here?

Static checks come from :mod:`rlam_jupyter.operations.bundle.checks` (zip safety, manifest,
object hashes, trace schemas, graph completeness, provenance documents). Then the
recorded environments are compared with the current one (differences are listed,
not fatal), and with ``reexecute=True`` the bundle is imported into a scratch store
and its steps are re-executed in a fresh process, output hashes compared.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rlam_jupyter.operations.bundle.archive import DEFAULT_LIMITS, Limits
from rlam_jupyter.operations.bundle.checks import inspect_bundle
from rlam_jupyter.operations.bundle.importer import import_bundle
from rlam_jupyter.operations.bundle.inspection import (
    FAILED,
    INFO,
    OK,
    SKIPPED,
    Check,
    Inspection,
)
from rlam_jupyter.operations.bundle.problems import BundleError, Problem
from rlam_jupyter.operations.bundle.reexecute import (
    FAILING,
    NOT_VERIFIED,
    reexecute_in_fresh_process,
)
from rlam_jupyter.values.fingerprint import compare, fingerprint

_MARKS = {OK: "✓", FAILED: "✗", SKIPPED: "-", INFO: "~"}
_SHOWN_DIFFERENCES = 12


@dataclass
class VerifyReport:
    """Every check and its verdict; ``ok`` only when none failed."""

    bundle: Path
    bundle_hash: str
    runs: list[dict[str, Any]]
    checks: list[Check]
    environment_differences: list[dict[str, Any]] = field(default_factory=list)
    reexecution: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != FAILED for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": str(self.bundle),
            "blake3": self.bundle_hash,
            "ok": self.ok,
            "runs": self.runs,
            "checks": [c.to_json() for c in self.checks],
            "environment_differences": self.environment_differences,
            "reexecution": self.reexecution,
        }

    def text(self) -> str:
        runs = ", ".join(f"{r.get('name')} ({r['run_id'][-8:]})" for r in self.runs) or "-"
        lines = [
            f"bundle {self.bundle}",
            f"  manifest blake3 {self.bundle_hash or '-'}; runs: {runs}",
        ]
        for check in self.checks:
            lines.append(f"  {_MARKS.get(check.status, '?')} {check.name:<13} {check.summary}")
            for problem in check.problems[:20]:
                lines.append(f"      {problem}")
            if len(check.problems) > 20:
                lines.append(f"      ... and {len(check.problems) - 20} more (see --json)")
            for detail in check.details:
                lines.append(f"      {detail}")
        verdict = "verified: every check holds" if self.ok else "NOT verified: see ✗ above"
        lines.append(verdict)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(self.text())}</pre>"


def verify_bundle(
    path: str | os.PathLike[str],
    reexecute: bool = False,
    *,
    modules: Sequence[str] = (),
    method: str = "engine",
    limits: Limits = DEFAULT_LIMITS,
    allow_skipped: bool = False,
) -> VerifyReport:
    """Check a bundle; ``reexecute`` also re-runs its steps in a fresh process.

    ``modules`` are imported in that process first, to register custom actions;
    ``method`` is ``engine`` or ``replay`` (see :mod:`rlam_jupyter.operations.bundle.reexecute`).
    A step that ran but could not be re-executed fails the check unless
    ``allow_skipped`` (it is named either way, never counted as reproduced).
    Re-execution loads the bundle's pickled objects: use it on bundles you trust.
    """
    inspection = inspect_bundle(Path(path), limits)
    try:
        if inspection.rows is not None:
            _check_environment(inspection)
        if reexecute:
            _check_reexecution(inspection, modules, method, limits, allow_skipped)
        report = VerifyReport(
            bundle=Path(path),
            bundle_hash=inspection.manifest_hash,
            runs=inspection.manifest.runs if inspection.manifest else [],
            checks=inspection.checks,
            environment_differences=[
                {"key": k, "recorded": a, "current": b} for k, a, b in inspection.env_differences
            ],
            reexecution=inspection.reexecution,
        )
    finally:
        inspection.close()
    return report


def _check_environment(inspection: Inspection) -> None:
    rows = inspection.rows
    assert rows is not None
    current = fingerprint()
    differences: list[tuple[str, Any, Any]] = []
    details: list[str] = []
    for env_id, env in sorted(rows.environments.items()):
        try:
            recorded = json.loads(env["fingerprint"])
        except (TypeError, ValueError):
            inspection.add(
                Check(
                    "environment",
                    FAILED,
                    "unreadable fingerprint",
                    [
                        Problem(
                            "trace/environments.parquet",
                            f"fingerprint of {env_id[:12]} is not JSON",
                        )
                    ],
                )
            )
            return
        found = [d for d in compare(recorded, current.data) if d[0] != "python.executable"]
        for key, was, now in found:
            if (key, was, now) not in differences:
                differences.append((key, was, now))
    inspection.env_differences = differences
    if not differences:
        inspection.add(Check("environment", OK, "same as the recorded environment"))
        return
    for key, was, now in differences[:_SHOWN_DIFFERENCES]:
        details.append(f"{key}: {_show(was)} → {_show(now)}")
    if len(differences) > _SHOWN_DIFFERENCES:
        details.append(f"... and {len(differences) - _SHOWN_DIFFERENCES} more (see --json)")
    inspection.add(
        Check(
            "environment",
            INFO,
            f"{len(differences)} difference(s) from the recorded environment (not fatal)",
            details=details,
        )
    )


def _show(value: Any) -> str:
    return "(absent)" if value is None else str(value)


def _check_reexecution(
    inspection: Inspection,
    modules: Sequence[str],
    method: str,
    limits: Limits,
    allow_skipped: bool = False,
) -> None:
    if not inspection.ok or inspection.rows is None:
        inspection.add(
            Check("re-execution", SKIPPED, "not attempted: the bundle failed the checks above")
        )
        return
    run_ids = [r["run_id"] for r in inspection.rows.runs]
    with tempfile.TemporaryDirectory(prefix="rlam-verify-") as scratch:
        store = Path(scratch) / "store"
        try:
            import_bundle(inspection.path, store, limits=limits)
            used, outcomes = reexecute_in_fresh_process(store, run_ids, modules, method)
        except (BundleError, RuntimeError, OSError, ValueError) as exc:
            inspection.add(
                Check(
                    "re-execution",
                    FAILED,
                    "could not re-execute",
                    [Problem(inspection.path.name, str(exc))],
                )
            )
            return
    inspection.reexecution = [asdict(o) for o in outcomes]
    counts = Counter(o.outcome for o in outcomes)
    failing = FAILING if allow_skipped else FAILING + NOT_VERIFIED
    problems = [
        Problem(o.step_id, f"{o.action}: {o.outcome}" + (f" ({o.detail})" if o.detail else ""))
        for o in outcomes
        if o.outcome in failing
    ]
    allowed = [
        f"{o.step_id} {o.action}: not verified ({o.detail})"
        for o in outcomes
        if allow_skipped and o.outcome in NOT_VERIFIED
    ]
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no steps"
    where = f"in a fresh process (with {used})"
    if allowed:
        where += f"; {len(allowed)} step(s) not verified, allowed by --allow-skipped"
    inspection.add(
        Check(
            "re-execution",
            FAILED if problems else OK,
            f"{summary} — {where}",
            problems,
            details=allowed,
        )
    )
