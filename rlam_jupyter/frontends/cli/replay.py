"""``rlam replay``, ``rlam diff`` and ``rlam forks``: restore, compare and draw runs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rlam_jupyter.frontends.cli.output import EXIT_CHECK_FAILED, EXIT_OK, add_options, emit
from rlam_jupyter.frontends.options import DIFF, REPLAY, Option

ALLOW_SKIPPED: Option = (
    ["--allow-skipped"],
    {
        "action": "store_true",
        "help": "with --verify: exit 0 even when steps could not be re-executed (they are named)",
    },
)
ACTIONS: Option = (
    ["--actions"],
    {
        "action": "append",
        "default": [],
        "metavar": "MODULE_OR_FILE",
        "help": "import a module or a .py file first, for actions whose source the trace does "
        "not hold (repeatable)",
    },
)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """``rlam replay RUN [--upto N] [--verify]``, ``rlam diff A B``, ``rlam forks RUN``."""
    replay = sub.add_parser(
        "replay",
        parents=[common],
        help="check that a run restores from the store; --verify re-executes and compares",
    )
    add_options(replay, [*REPLAY, ALLOW_SKIPPED, ACTIONS]).set_defaults(handler=_replay)
    diff = sub.add_parser(
        "diff", parents=[common], help="step-aligned differences between two runs"
    )
    add_options(diff, DIFF).set_defaults(handler=_diff)
    forks = sub.add_parser("forks", parents=[common], help="the fork tree a run belongs to")
    forks.add_argument("run")
    forks.set_defaults(handler=_forks)


# Handlers import the operations when they run: `rlam --help` loads none of them.


def _replay(args: argparse.Namespace) -> int:
    # lazy: the bundle package (DuckDB), for rlam --help start-up
    from rlam_jupyter.operations.bundle.reexecute import import_actions
    from rlam_jupyter.operations.replay import replay  # lazy: the engine and DuckDB, for start-up

    if "" not in sys.path:
        sys.path.insert(0, "")  # modules of the current folder, as `python -m` finds them
    for module in args.actions:
        import_actions(module)
    report = replay(args.run, upto=args.upto, verify=args.verify, store=args.store, namespace={})
    report.notes.clear()
    emit(args, report.to_json(), repr(report))
    return EXIT_OK if report.passes(args.allow_skipped) else EXIT_CHECK_FAILED


def _diff(args: argparse.Namespace) -> int:
    # lazy: the engine and DuckDB, for rlam --help start-up
    from rlam_jupyter.operations.replay import diff

    result = diff(args.run_a, args.run_b, store=args.store)
    emit(args, result.to_json(), repr(result))
    return EXIT_OK


def _forks(args: argparse.Namespace) -> int:
    # lazy: the engine and DuckDB, for rlam --help start-up
    from rlam_jupyter.operations.replay import fork_tree

    frame = fork_tree(args.run, store=args.store)
    rows = frame.to_dict(orient="records")
    lines = [
        f"{'  ' * int(r['depth'])}{'▸ ' if r['is_selected'] else ''}{r['name']} ({r['run_id']})"
        + (f" forked at step {r['fork_seq']}" if r["parent_run_id"] else "")
        + f" · {r['status']} · {r['steps']} own step(s)"
        for r in rows
    ]
    emit(args, rows, "\n".join(lines))
    return EXIT_OK
