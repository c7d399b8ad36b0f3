"""Reproducibility Success of one run: its steps re-executed (``replay(run, verify=True)``)
and counted as reproducing, not reproducing, or not checked (named, with why)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlam_jupyter.errors import RlamError
from rlam_jupyter.operations.audit.metrics import Tally
from rlam_jupyter.store.layout import StoreLayout

if TYPE_CHECKING:  # the engine loads only when an audit re-executes
    from rlam_jupyter.engine.session import Session


def reproducibility_of(layout: StoreLayout, run_id: str, session: Session | None = None) -> Tally:
    """``session``: a kernel's own session re-executes with its engine (its indexes are in
    memory), as :func:`~rlam_jupyter.operations.replay.replay` does with it."""
    # lazy: replay brings in the engine, which an audit without re-execution never needs
    from rlam_jupyter.operations.replay import replay

    tally = Tally()
    try:
        report = replay(run_id, verify=True, store=layout, namespace={}, session=session)
    except RlamError as exc:
        tally.check(False, f"cannot be verified: {exc}")
        return tally
    for step in report.steps:
        if step.inherited_from:
            continue  # audited with the run it belongs to
        label = f"step {step.seq} ({step.action})"
        if step.verify in ("identical", "diverged"):
            detail = "; ".join(step.differences) or "outputs differ"
            tally.check(step.verify == "identical", f"{label} does not reproduce: {detail}")
        elif step.ran and step.verify:
            why = "; ".join(step.differences)
            tally.skip(f"{label} {step.verify}" + (f": {why}" if why else ""))
    return tally
