"""``%rlam compact [--open]``: move this store's closed journals into Parquet now."""

from __future__ import annotations

from typing import Any

from IPython.core.magic_arguments import argument, kwds, magic_arguments

from rlam_jupyter.engine.session import Session
from rlam_jupyter.frontends.magics.commands import command, parse
from rlam_jupyter.store.compaction import compact


@command("compact")
@magic_arguments("%rlam compact")
@kwds(add_help=True, description="Compact this store now.")
@argument("--open", action="store_true", help="also compact open runs up to now")
def compact_command(magics: Any, session: Session, argv: list[str], cell: str | None) -> Any:
    args = parse(compact_command, argv)
    if args is None:
        return None
    print(compact(session.engine.layout, include_open=args.open).summary())
    return None
