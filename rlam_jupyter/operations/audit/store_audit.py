"""``audit()``: the runs of a store (one, or every run) audited one by one, re-executed
for Reproducibility Success unless told not to, and gathered in one report."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlam_jupyter.operations.audit.queries import run_ids_oldest_first
from rlam_jupyter.operations.audit.report import AuditReport
from rlam_jupyter.operations.audit.reproducibility import reproducibility_of
from rlam_jupyter.operations.audit.run_audit import audit_run
from rlam_jupyter.store.catalog import connect, resolve_run
from rlam_jupyter.store.resolve import StoreRef, resolve_store

if TYPE_CHECKING:  # the engine loads only when an audit re-executes
    from rlam_jupyter.engine.session import Session


def audit(
    run: str | None = None,
    store: StoreRef = None,
    *,
    reproduce: bool = True,
    session: Session | None = None,
) -> AuditReport:
    """Audit one run (id, name or unique prefix) or, with ``run=None``, every run.

    ``reproduce=False`` skips the re-execution that measures Reproducibility Success;
    ``session``: the kernel's, whose engine then re-executes (as replay uses it).
    """
    layout = resolve_store(store)
    con = connect(layout)
    try:
        run_ids = run_ids_oldest_first(con) if run is None else [resolve_run(con, run)]
        audits = [audit_run(con, run_id) for run_id in run_ids]
    finally:
        con.close()
    if reproduce:
        for item in audits:
            item.reproducibility = reproducibility_of(layout, item.run_id, session)
    return AuditReport(audits)
