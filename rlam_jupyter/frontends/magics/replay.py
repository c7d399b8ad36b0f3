"""``%rlam replay``, ``%rlam fork`` and ``%rlam diff``: the operations of ``operations.replay``
on this kernel's session."""

from __future__ import annotations

from typing import Any

from rlam_jupyter.engine.session import Session
from rlam_jupyter.frontends.magics.commands import command
from rlam_jupyter.frontends.options import DIFF, FORK, REPLAY, parse_overrides
from rlam_jupyter.operations.replay import diff, fork, replay


@command("replay", "Restore a recorded run's outputs without re-running.", REPLAY)
def replay_command(magics: Any, session: Session, args: Any, cell: str | None) -> Any:
    return replay(args.run, upto=args.upto, verify=args.verify, session=session)


@command("fork", "Branch a new run from a recorded step with overrides.", FORK)
def fork_command(magics: Any, session: Session, args: Any, cell: str | None) -> Any:
    return fork(
        args.run,
        at=args.at,
        params=parse_overrides(args.overrides),
        name=args.name,
        downstream=not args.no_downstream,
        session=session,
    )


@command("diff", "Step-aligned differences of two runs.", DIFF)
def diff_command(magics: Any, session: Session, args: Any, cell: str | None) -> Any:
    return diff(args.run_a, args.run_b, session=session)
