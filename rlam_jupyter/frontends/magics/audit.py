"""``%rlam audit [RUN] [--no-reproduce]``: the paper's metrics over this kernel's store."""

from __future__ import annotations

from typing import Any

from IPython.core.magic_arguments import kwds, magic_arguments

from rlam_jupyter.engine.session import Session
from rlam_jupyter.frontends.magics.commands import command, magic_options, parse
from rlam_jupyter.frontends.options import AUDIT
from rlam_jupyter.operations.audit import audit


@command("audit")
@magic_arguments("%rlam audit")
@kwds(add_help=True, description="The paper's metrics over the trace.")
@magic_options(AUDIT)
def audit_command(magics: Any, session: Session, argv: list[str], cell: str | None) -> Any:
    args = parse(audit_command, argv)
    if args is None:
        return None
    return audit(args.run, session.engine.layout, reproduce=not args.no_reproduce)
