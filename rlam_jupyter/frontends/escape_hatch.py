"""``%%rlam python``: the explicit escape hatch for a reviewed code cell.

Real analyses need steps the catalogue lacks. Such a cell runs as one recorded step
(action ``python``): its source hash is part of the step, its declared inputs are
artifacts of the run, its declared outputs become artifacts, and it is ``external``
by default (its outputs are restored on replay, never re-run) unless ``--pure`` says
the code is deterministic. Only a person writes these cells: agents never get this action.
"""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics

from rlam_jupyter.actions.proposal import Proposal
from rlam_jupyter.actions.python_cell import ACTION_NAME, python_spec
from rlam_jupyter.engine.session import Session
from rlam_jupyter.engine.trace import CellInfo
from rlam_jupyter.frontends.magics import finish_cell, register_command
from rlam_jupyter.values.hashing import digest_bytes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="%%rlam python",
        description="Run a reviewed Python cell as one recorded step.",
        exit_on_error=False,
    )
    parser.add_argument("--inputs", nargs="*", default=[], help="artifact names the code reads")
    parser.add_argument(
        "--outputs", nargs="*", default=[], help="names the code defines, recorded as outputs"
    )
    parser.add_argument("--run", default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--pure", action="store_true", help="the code is deterministic: cache and re-execute it"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@register_command("python", cell=True)
def python_cell(magics: Magics, session: Session, argv: list[str], cell: str | None) -> Any:
    """``%%rlam python --inputs a b --outputs c``: execute the cell body as one step."""
    if cell is None:
        raise UsageError("`python` is a cell command: `%%rlam python --inputs ... --outputs ...`")
    try:
        args = _parser().parse_args(argv)
    except (argparse.ArgumentError, SystemExit) as exc:
        raise UsageError(f"%%rlam python: {exc}") from None
    run = session.run_for(args.run, args.seed)
    if ACTION_NAME in session.engine.registry:
        raise UsageError(
            "an action named 'python' is already registered; rename it to use the escape hatch"
        )
    spec = python_spec(cell, args.inputs, args.outputs, args.pure)
    proposal = Proposal(
        ACTION_NAME,
        {"source": cell},
        {name: name for name in args.inputs},
        tuple(args.outputs),
        origin="cell",
        line=1,
        col=1,
        source_text=cell,
    )
    shell = magics.shell
    info = CellInfo(
        cell_id=getattr(shell, "_rlam_cell_id", None),
        execution_count=getattr(shell, "execution_count", None),
        source_hash=digest_bytes("cell", cell.encode()),
    )
    results = session.execute(run, [proposal], cell=info, spec=spec)
    return finish_cell(run.name, results, quiet=False, verbose=args.verbose)
