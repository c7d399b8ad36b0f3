"""``%rlam export [NOTEBOOK] [--out FILE] [--runs RUN ...]`` and ``%rlam import BUNDLE``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from IPython.core.interactiveshell import InteractiveShell

from rlam_jupyter.engine.session import Session
from rlam_jupyter.frontends.kernel_notebook import NotebookLookup, find_kernel_notebook
from rlam_jupyter.frontends.magics.commands import command
from rlam_jupyter.frontends.options import Option
from rlam_jupyter.operations.bundle.export import export
from rlam_jupyter.operations.bundle.importer import import_bundle

EXPORT: list[Option] = [
    (["notebook"], {"nargs": "?", "default": None}),
    (["--out", "-o"], {"default": None}),
    (["--runs"], {"nargs": "+", "default": None}),
    (["--no-objects"], {"action": "store_true"}),
    (["--no-llm-content"], {"action": "store_true"}),
]


@command("export", "Write a provenance bundle of this notebook and its runs.", EXPORT)
def export_command(magics: Any, session: Session, args: Any, cell: str | None) -> Any:
    own = kernel_notebook(magics.shell, session)
    notebook = args.notebook or own.path
    is_own = own.path is not None and _same_file(notebook, own.path)
    runs = args.runs
    if not runs and notebook is None:
        runs = list(session.engine.runs) or None  # what this kernel recorded
    result = export(
        notebook,
        out=args.out,
        runs=runs,
        store=session.engine.layout,
        include_objects=not args.no_objects,
        include_llm_content=not args.no_llm_content,
        kernel_writer=session.engine.writer_id if is_own else None,
    )
    if args.notebook is None:
        result = replace(result, notes=(own.note(), *result.notes))
    print(result.summary())
    return None


@command("import", "Add a bundle's runs to this kernel's store.", [(["bundle"], {})])
def import_command(magics: Any, session: Session, args: Any, cell: str | None) -> Any:
    print(import_bundle(args.bundle, session.engine.layout).summary())
    return None


def kernel_notebook(shell: InteractiveShell | None, session: Session) -> NotebookLookup:
    """This kernel's notebook file (as last saved), or why it cannot be found."""
    history = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None) or []
    namespace = getattr(shell, "user_ns", None) or {}
    return find_kernel_notebook(session.notebook, namespace, list(history), Path.cwd())


def _same_file(a: str | Path | None, b: Path) -> bool:
    return a is not None and Path(a).resolve() == b.resolve()
