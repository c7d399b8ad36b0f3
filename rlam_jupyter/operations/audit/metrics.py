"""The paper's three metrics: their names, the targets they are held to, and the tally
each is counted in (what was expected, what was there, what was missing or not checked)."""

from __future__ import annotations

from dataclasses import dataclass, field

TARGETS = {
    "trace_completeness": 1.0,
    "failure_visibility": 1.0,
    "reproducibility_success": 1.0,
}
"""What the paper's R-LAM achieves; below any of these, ``rlam audit`` exits 1."""

METRIC_LABELS = {
    "trace_completeness": "Trace Completeness",
    "failure_visibility": "Failure Visibility",
    "reproducibility_success": "Reproducibility Success",
}


@dataclass
class Tally:
    """Present / expected items of one metric, and what is missing."""

    present: int = 0
    expected: int = 0
    missing: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Items that could not be checked at all (a step that was not re-executed): they
    count as expected and not present, and are named apart from real shortfalls."""

    def check(self, ok: bool, what: str) -> None:
        self.expected += 1
        if ok:
            self.present += 1
        else:
            self.missing.append(what)

    def skip(self, what: str) -> None:
        self.expected += 1
        self.skipped.append(what)

    @property
    def value(self) -> float | None:
        return self.present / self.expected if self.expected else None

    def add(self, other: Tally) -> None:
        self.present += other.present
        self.expected += other.expected
        self.missing.extend(other.missing)
        self.skipped.extend(other.skipped)
