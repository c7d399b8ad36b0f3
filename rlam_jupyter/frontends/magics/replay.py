"""``%rlam replay``, ``%rlam fork`` and ``%rlam diff``: the operations of ``operations.replay``
on this kernel's session."""

from __future__ import annotations

from typing import Any

from IPython.core.magic_arguments import kwds, magic_arguments

from rlam_jupyter.engine.session import Session
from rlam_jupyter.frontends.magics.commands import command, magic_options, parse
from rlam_jupyter.frontends.options import DIFF, FORK, REPLAY, parse_overrides
from rlam_jupyter.operations.replay import diff, fork, replay


@command("replay")
@magic_arguments("%rlam replay")
@kwds(add_help=True, description="Restore a recorded run's outputs without re-running.")
@magic_options(REPLAY)
def replay_command(magics: Any, session: Session, argv: list[str], cell: str | None) -> Any:
    args = parse(replay_command, argv)
    if args is None:
        return None
    return replay(args.run, upto=args.upto, verify=args.verify, session=session)


@command("fork")
@magic_arguments("%rlam fork")
@kwds(add_help=True, description="Branch a new run from a recorded step with overrides.")
@magic_options(FORK)
def fork_command(magics: Any, session: Session, argv: list[str], cell: str | None) -> Any:
    args = parse(fork_command, argv)
    if args is None:
        return None
    return fork(
        args.run,
        at=args.at,
        params=parse_overrides(args.overrides),
        name=args.name,
        downstream=not args.no_downstream,
        session=session,
    )


@command("diff")
@magic_arguments("%rlam diff")
@kwds(add_help=True, description="Step-aligned differences of two runs.")
@magic_options(DIFF)
def diff_command(magics: Any, session: Session, argv: list[str], cell: str | None) -> Any:
    args = parse(diff_command, argv)
    if args is None:
        return None
    return diff(args.run_a, args.run_b, session=session)
