"""The audit's report: the metrics over the audited runs (item-weighted), each run's,
what is missing or not verified, and the failures; as text, HTML and JSON."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from rlam_jupyter.operations.audit.metrics import METRIC_LABELS, TARGETS, Tally
from rlam_jupyter.operations.audit.run_audit import RunAudit
from rlam_jupyter.operations.audit.visibility import Failure


@dataclass
class AuditReport:
    """Metrics over the audited runs (item-weighted), per run, and the failure report."""

    runs: list[RunAudit]

    def _total(self, metric: str) -> Tally | None:
        total = Tally()
        seen = False
        for run in self.runs:
            tally = {
                "trace_completeness": run.completeness,
                "failure_visibility": run.visibility,
                "reproducibility_success": run.reproducibility,
            }[metric]
            if tally is not None:
                seen = True
                total.add(tally)
        return total if seen else None

    @property
    def metrics(self) -> dict[str, float | None]:
        """Each metric in [0, 1]; None when nothing was there to measure (e.g. no failures)."""
        result: dict[str, float | None] = {}
        for metric in TARGETS:
            tally = self._total(metric)
            result[metric] = tally.value if tally is not None else None
        return result

    @property
    def trace_completeness(self) -> float | None:
        return self.metrics["trace_completeness"]

    @property
    def failure_visibility(self) -> float | None:
        return self.metrics["failure_visibility"]

    @property
    def reproducibility_success(self) -> float | None:
        return self.metrics["reproducibility_success"]

    @property
    def below_target(self) -> dict[str, float]:
        return {m: v for m, v in self.metrics.items() if v is not None and v < TARGETS[m] - 1e-12}

    @property
    def ok(self) -> bool:
        """Every metric meets its target; a step that was not re-executed is a shortfall."""
        return self.passes(allow_skipped=False)

    def passes(self, allow_skipped: bool) -> bool:
        """``ok``, or with ``allow_skipped``: every metric below target is short only by
        items that could not be checked (steps not re-executed, steps in flight under a
        writer of unknown fate); they are still counted in the metric and named."""
        below = self.below_target
        if not allow_skipped:
            return not below
        for metric in below:
            total = self._total(metric)
            if total is None or total.present + len(total.skipped) != total.expected:
                return False
        return True

    def skipped(self) -> list[str]:
        """Everything that could not be checked, and why, one sentence each: steps not
        re-executed (Reproducibility Success), steps in flight under a writer whose fate
        cannot be told (Trace Completeness)."""
        return [f"{run.name}: {what}" for run in self.runs for what in run.skipped]

    @property
    def failures(self) -> list[Failure]:
        return [f for run in self.runs for f in run.failures]

    def missing(self) -> list[str]:
        """Everything the metrics found missing, one sentence each."""
        return [f"{run.name}: {m}" for run in self.runs for m in run.missing]

    def to_json(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "targets": TARGETS,
            "ok": self.ok,
            "not_verified": self.skipped(),
            "runs": [
                {
                    "run_id": r.run_id,
                    "name": r.name,
                    "status": r.status,
                    "steps": r.steps,
                    "trace_completeness": r.completeness.value,
                    "failure_visibility": r.visibility.value,
                    "reproducibility_success": r.reproducibility.value
                    if r.reproducibility
                    else None,
                    "missing": r.missing,
                    "not_verified": r.skipped,
                    "notes": r.notes,
                }
                for r in self.runs
            ],
            "failures": [f.__dict__ for f in self.failures],
        }

    def __repr__(self) -> str:
        lines = [f"audit of {len(self.runs)} run(s)"]
        for metric, value in self.metrics.items():
            lines.append(
                f"  {METRIC_LABELS[metric]:<24} {_fmt(value):>7}  (target {TARGETS[metric]:.2f})"
            )
        lines.append("")
        lines.append(f"  {'run':<28} {'status':<17} {'steps':>5} {'TC':>6} {'FV':>6} {'RS':>6}")
        for r in self.runs:
            rs = r.reproducibility.value if r.reproducibility else None
            lines.append(
                f"  {r.name[:28]:<28} {r.status[:17]:<17} {r.steps:>5} "
                f"{_fmt(r.completeness.value):>6} {_fmt(r.visibility.value):>6} {_fmt(rs):>6}"
            )
        missing = self.missing()
        if missing:
            lines += ["", "missing or wrong:"] + [f"  - {m}" for m in missing[:50]]
        skipped = self.skipped()
        if skipped:
            lines += ["", f"not verified ({_NOT_VERIFIED}):"]
            lines += [f"  - {m}" for m in skipped[:50]]
        if self.failures:
            lines += ["", "failures:"]
            for f in self.failures:
                where = f"step {f.seq} " if f.seq is not None else ""
                answer = f" → recovered by {f.recovered_by}" if f.recovered_by else ""
                lines.append(
                    f"  - {where}{f.action} {f.status}: {f.error_type}: {f.message}{answer}"
                )
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        cards = "".join(
            f"<div style='display:inline-block;margin:0 1.5em 0.5em 0'>"
            f"<div style='font-size:1.6em;color:{_colour(m, v)}'>{_fmt(v)}</div>"
            f"<div>{METRIC_LABELS[m]}</div></div>"
            for m, v in self.metrics.items()
        )
        rows = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(c))}</td>"
                for c in (
                    r.name,
                    r.status,
                    r.steps,
                    _fmt(r.completeness.value),
                    _fmt(r.visibility.value),
                    _fmt(r.reproducibility.value if r.reproducibility else None),
                )
            )
            + "</tr>"
            for r in self.runs
        )
        failures = "".join(
            f"<li><b>{html.escape(f.action)}</b> (step {f.seq}) {html.escape(f.status)}: "
            f"<code>{html.escape(str(f.error_type))}: {html.escape(str(f.message))}</code>"
            + (f" → recovered by {html.escape(f.recovered_by)}" if f.recovered_by else "")
            + "</li>"
            for f in self.failures
        )
        missing = "".join(f"<li>{html.escape(m)}</li>" for m in self.missing()[:50])
        skipped = "".join(f"<li>{html.escape(m)}</li>" for m in self.skipped()[:50])
        return (
            f"<div class='rlam-audit'>{cards}<table class='rlam-table'><thead><tr><th>run</th>"
            "<th>status</th><th>steps</th><th>TC</th><th>FV</th><th>RS</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
            + (f"<p>Missing or wrong:</p><ul>{missing}</ul>" if missing else "")
            + (
                f"<p>Not verified ({html.escape(_NOT_VERIFIED)}):</p><ul>{skipped}</ul>"
                if skipped
                else ""
            )
            + (f"<p>Failures:</p><ul>{failures}</ul>" if failures else "")
            + "</div>"
        )


_NOT_VERIFIED = (
    "not re-executed, or in flight with a writer of unknown fate; counted against "
    "Reproducibility Success and Trace Completeness respectively"
)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _colour(metric: str, value: float | None) -> str:
    if value is None:
        return "inherit"
    ok = value >= TARGETS[metric] - 1e-12
    return "var(--jp-success-color1,#2e7d32)" if ok else "var(--jp-error-color1,#d32f2f)"
