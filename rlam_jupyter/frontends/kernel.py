"""The one place that finds the running kernel and its rlam session.

Core code never asks IPython where it runs: front ends look the session up here and
hand it (or its namespace) to the operations they call.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any

from IPython import get_ipython
from IPython.core.interactiveshell import InteractiveShell

from rlam_jupyter.engine.session import Session
from rlam_jupyter.engine.trace import CellInfo
from rlam_jupyter.values.digest import digest_bytes

_SESSION_ATTRIBUTE = "_rlam_session"
_CELL_ID_ATTRIBUTE = "_rlam_cell_id"


def session_of(shell: InteractiveShell) -> Session:
    """The kernel's rlam session, created on first use."""
    session = getattr(shell, _SESSION_ATTRIBUTE, None)
    if session is None:
        session = Session.create(namespace=shell.user_ns, notebook=notebook_name(shell))
        setattr(shell, _SESSION_ATTRIBUTE, session)
        shell.events.register("pre_run_cell", _remember_cell(shell))
    return session


def notebook_name(shell: InteractiveShell) -> str | None:
    """The notebook this kernel serves, as Jupyter names it (``JPY_SESSION_NAME``, or the
    ``__session__`` ipykernel puts in the namespace); None in a terminal."""
    named = os.environ.get("JPY_SESSION_NAME") or shell.user_ns.get("__session__")
    return named if isinstance(named, str) and named else None


def close_session(shell: InteractiveShell) -> None:
    """End the session's open runs so their journals are complete."""
    session = getattr(shell, _SESSION_ATTRIBUTE, None)
    if session is not None:
        session.close()
        setattr(shell, _SESSION_ATTRIBUTE, None)


def current_shell() -> InteractiveShell | None:
    """The IPython shell this code runs in, or None in a plain script."""
    shell: InteractiveShell | None = get_ipython()
    return shell


def kernel_session() -> Session | None:
    """The running kernel's session if ``%%rlam`` / ``%rlam`` started one (never creates)."""
    shell = current_shell()
    session: Session | None = getattr(shell, _SESSION_ATTRIBUTE, None) if shell else None
    return session


def user_namespace() -> MutableMapping[str, Any] | None:
    """The kernel's user namespace, where restored values are bound; None outside IPython."""
    shell = current_shell()
    return shell.user_ns if shell is not None else None


def cell_id(shell: InteractiveShell) -> str | None:
    """The id of the notebook cell now running (front ends that send one)."""
    value: str | None = getattr(shell, _CELL_ID_ATTRIBUTE, None)
    return value


def _remember_cell(shell: InteractiveShell) -> Any:
    def pre_run_cell(info: Any) -> None:
        setattr(shell, _CELL_ID_ATTRIBUTE, getattr(info, "cell_id", None))

    return pre_run_cell


def cell_info(shell: InteractiveShell, body: str) -> CellInfo:
    """What the trace keeps of the notebook cell that ran ``body``."""
    return CellInfo(
        cell_id=cell_id(shell),
        execution_count=getattr(shell, "execution_count", None),
        source_hash=digest_bytes("cell", body.encode()),
    )
