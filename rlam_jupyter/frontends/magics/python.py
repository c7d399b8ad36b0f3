"""``%%rlam python``: the explicit escape hatch for a reviewed code cell.

Real analyses need steps the catalogue lacks. Such a cell runs as one recorded step
(action ``python``): its source hash is part of the step, its declared inputs are
artifacts of the run, its declared outputs become artifacts, and it is ``external``
by default (its outputs are restored on replay, never re-run) unless ``--pure`` says
the code is deterministic. Only a person writes these cells: agents never get this action.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics

from rlam_jupyter.actions.proposal import Proposal
from rlam_jupyter.actions.python_cell import ACTION_NAME, python_spec
from rlam_jupyter.engine.session import Session
from rlam_jupyter.frontends.kernel import cell_info
from rlam_jupyter.frontends.magics.cell import finish_cell
from rlam_jupyter.frontends.magics.commands import command
from rlam_jupyter.frontends.options import Option

PYTHON_OPTIONS: list[Option] = [
    (["--inputs"], {"nargs": "*", "default": [], "help": "artifact names the code reads"}),
    (
        ["--outputs"],
        {"nargs": "*", "default": [], "help": "names the code defines, recorded as outputs"},
    ),
    (["--run"], {"default": None}),
    (["--seed"], {"type": int, "default": None}),
    (
        ["--pure"],
        {"action": "store_true", "help": "the code is deterministic: cache and re-execute it"},
    ),
    (["-v", "--verbose"], {"action": "store_true"}),
]


@command("python", "Run a reviewed Python cell as one recorded step.", PYTHON_OPTIONS, cell=True)
def python_cell(magics: Magics, session: Session, args: Any, cell: str | None) -> Any:
    """``%%rlam python --inputs a b --outputs c``: execute the cell body as one step."""
    if cell is None:
        raise UsageError("`python` is a cell command: `%%rlam python --inputs ... --outputs ...`")
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
    assert shell is not None  # a magic always runs in a shell
    info = cell_info(shell, cell)
    results = session.execute(run, [proposal], cell=info, spec=spec)
    return finish_cell(run.name, results, quiet=False, verbose=args.verbose)
