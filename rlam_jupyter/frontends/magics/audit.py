"""``%rlam audit [RUN] [--no-reproduce]``: the paper's metrics over this kernel's store."""

from __future__ import annotations

from typing import Any

from rlam_jupyter.engine.session import Session
from rlam_jupyter.frontends.magics.commands import command
from rlam_jupyter.frontends.options import AUDIT
from rlam_jupyter.operations.audit import audit


@command("audit", "The paper's metrics over the trace.", AUDIT)
def audit_command(magics: Any, session: Session, args: Any, cell: str | None) -> Any:
    return audit(args.run, session.engine.layout, reproduce=not args.no_reproduce, session=session)
