"""How a run stands, as its record and its writers tell: open or interrupted, and whether
a step still in flight can be judged at all (only while every writer is seen working)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rlam_jupyter.operations.audit.queries import Row
from rlam_jupyter.store.schema import IN_FLIGHT_STATUSES, INTERRUPTED


@dataclass(frozen=True)
class RunState:
    """The run's status and its writers' fate, as the checks of one run need them."""

    open_run: bool
    """Still open: in flight only while a writer may still be working on it. One whose
    writers all died reads as 'interrupted' (the catalog derives it) and is judged whole."""
    interrupted_run: bool
    died: str
    """The reasons the dead writers died, joined (empty when none died)."""
    not_alive: tuple[str, ...]
    """The reasons of every writer not seen alive (dead, or of unknown fate)."""
    fate_unknown: bool
    """Open, under a writer whose fate cannot be told (another host) or none at all: its
    steps in flight may never finish, so they count as not checked, never as complete."""

    def notes(self) -> list[str]:
        """What the report says of the run's state, so its numbers can be read right."""
        if self.open_run:
            why = f" ({'; '.join(self.not_alive)})" if self.not_alive else ""
            return [
                f"the run is still open{why}: "
                + (
                    "steps in flight are counted as not verified, their writer's fate unknown"
                    if self.fate_unknown
                    else "steps in flight are not counted as missing"
                )
            ]
        if self.interrupted_run:
            return [
                "the run was interrupted: its writer died before ending it"
                + (f" ({self.died})" if self.died else "")
            ]
        return []


def run_state(run: Row, writers: list[Row]) -> RunState:
    open_run = (run["status"] or "open") == "open"
    not_alive = tuple(w["reason"] for w in writers if w["state"] != "alive")
    return RunState(
        open_run=open_run,
        interrupted_run=run["status"] == INTERRUPTED,
        died="; ".join(w["reason"] for w in writers if w["state"] == "dead"),
        not_alive=not_alive,
        fate_unknown=open_run and (not writers or bool(not_alive)),
    )


def interrupted(last: Mapping[str, Any], interrupted_run: bool) -> bool:
    """True when a step's newest record says interrupted, or it was in flight in a run
    whose writer died (what the ``steps`` view derives)."""
    return last["status"] == INTERRUPTED or (
        interrupted_run and last["status"] in IN_FLIGHT_STATUSES
    )
