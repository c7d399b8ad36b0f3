"""``%rlam browse [RUN]``: the inline trace browser of this kernel's store."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, kwds, magic_arguments

from rlam_jupyter.engine.session import Session
from rlam_jupyter.frontends.magics.commands import command, parse
from rlam_jupyter.frontends.widget import browse


@command("browse")
@magic_arguments("%rlam browse")
@kwds(add_help=True, description="The inline trace browser of this kernel's store.")
@argument("run", nargs="*", help="run id, name or id prefix to open")
def browse_command(magics: Any, session: Session, argv: list[str], cell: str | None) -> Any:
    args = parse(browse_command, argv)
    if args is None:
        return None
    if len(args.run) > 1:
        raise UsageError("`%rlam browse` takes at most one run (id, name or id prefix)")
    return browse(args.run[0] if args.run else None, store=session.engine.layout)
