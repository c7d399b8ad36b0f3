"""``%rlam browse [RUN]``: the inline trace browser of this kernel's store."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError

from rlam_jupyter.engine.session import Session
from rlam_jupyter.frontends.magics.commands import command
from rlam_jupyter.frontends.widget import browse

RUN = (["run"], {"nargs": "*", "help": "run id, name or id prefix to open"})


@command("browse", "The inline trace browser of this kernel's store.", [RUN])
def browse_command(magics: Any, session: Session, args: Any, cell: str | None) -> Any:
    if len(args.run) > 1:
        raise UsageError("`%rlam browse` takes at most one run (id, name or id prefix)")
    return browse(args.run[0] if args.run else None, store=session.engine.layout)
