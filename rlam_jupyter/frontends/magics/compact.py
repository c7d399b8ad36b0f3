"""``%rlam compact [--open]``: move this store's closed journals into Parquet now."""

from __future__ import annotations

from typing import Any

from rlam_jupyter.engine.session import Session
from rlam_jupyter.frontends.magics.commands import command
from rlam_jupyter.store.compaction import compact

OPEN = (["--open"], {"action": "store_true", "help": "also compact open runs up to now"})


@command("compact", "Compact this store now.", [OPEN])
def compact_command(magics: Any, session: Session, args: Any, cell: str | None) -> Any:
    print(compact(session.engine.layout, include_open=args.open).summary())
    return None
