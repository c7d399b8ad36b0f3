"""One run's audit: its trace read once, then Trace Completeness and Failure Visibility
measured over it (Reproducibility Success is added when the run is re-executed)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rlam_jupyter.operations.audit.completeness import completeness_of
from rlam_jupyter.operations.audit.metrics import Tally
from rlam_jupyter.operations.audit.queries import read_run
from rlam_jupyter.operations.audit.run_state import run_state
from rlam_jupyter.operations.audit.visibility import Failure, visibility_of
from rlam_jupyter.store.catalog import Connection


@dataclass
class RunAudit:
    """The metrics of one run."""

    run_id: str
    name: str
    status: str
    steps: int
    completeness: Tally
    visibility: Tally
    reproducibility: Tally | None
    failures: list[Failure]
    notes: list[str] = field(default_factory=list)

    @property
    def tallies(self) -> list[Tally]:
        """The metrics measured for this run (reproducibility only when re-executed)."""
        found = (self.completeness, self.visibility, self.reproducibility)
        return [t for t in found if t is not None]

    @property
    def missing(self) -> list[str]:
        return [m for tally in self.tallies for m in tally.missing]

    @property
    def skipped(self) -> list[str]:
        return [m for tally in self.tallies for m in tally.skipped]


def audit_run(con: Connection, run_id: str) -> RunAudit:
    trace = read_run(con, run_id)
    state = run_state(trace.run, trace.writers)
    completeness = completeness_of(trace, state)
    visibility, failures = visibility_of(trace, state)
    return RunAudit(
        run_id,
        trace.run["name"],
        trace.run["status"] or "open",
        len(trace.latest),
        completeness,
        visibility,
        None,
        failures,
        state.notes(),
    )
