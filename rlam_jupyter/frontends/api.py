"""The notebook's Python API (``rlam_jupyter.replay``, ``fork``, ``diff``, ``audit``): the operations,
with this kernel's session and namespace filled in.

In a kernel, restored and forked values land in the notebook namespace and a fork
becomes the kernel's current run, as with the magics; in a script these are the
operations themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from rlam_jupyter.engine.session import Session
from rlam_jupyter.frontends.kernel import kernel_session, user_namespace
from rlam_jupyter.operations import replay as operations
from rlam_jupyter.operations.audit import AuditReport
from rlam_jupyter.operations.audit import audit as operations_audit
from rlam_jupyter.operations.replay.diff_views import RunDiff
from rlam_jupyter.operations.replay.views import ForkReport, ReplayReport
from rlam_jupyter.store.resolve import StoreRef


def replay(
    run: str,
    upto: int | str | None = None,
    verify: bool = False,
    store: StoreRef = None,
    **options: Any,
) -> ReplayReport:
    """Restore a run's recorded outputs (up to step ``upto``) without executing anything;
    see :func:`rlam_jupyter.operations.replay.replay` for ``options``."""
    session, namespace = _in_kernel(options)
    return operations.replay(
        run, upto, verify, store, namespace=namespace, session=session, **options
    )


def fork(
    run: str,
    at: int | str,
    params: Mapping[str, Any] | None = None,
    store: StoreRef = None,
    **options: Any,
) -> ForkReport:
    """Branch a new run from step ``at`` of ``run`` with parameter overrides;
    see :func:`rlam_jupyter.operations.replay.fork` for ``options``."""
    session, namespace = _in_kernel(options)
    return operations.fork(run, at, params, store, namespace=namespace, session=session, **options)


def diff(a: str, b: str, store: StoreRef = None, *, session: Session | None = None) -> RunDiff:
    """Step-aligned differences of two runs; see :func:`rlam_jupyter.operations.replay.diff`."""
    return operations.diff(a, b, store, session=session or kernel_session())


def _in_kernel(
    options: dict[str, Any],
) -> tuple[Session | None, MutableMapping[str, Any] | None]:
    """The kernel's session and namespace, unless ``options`` name them (or an engine)."""
    session, namespace = options.pop("session", None), options.pop("namespace", None)
    if options.get("engine") is not None:
        return session, namespace
    return session or kernel_session(), namespace if namespace is not None else user_namespace()


def audit(run: str | None = None, store: StoreRef = None, *, reproduce: bool = True) -> AuditReport:
    """The paper's three metrics over ``run`` (or every run); in a kernel, re-executed with
    the kernel's engine. See :func:`rlam_jupyter.operations.audit.audit`."""
    return operations_audit(run, store, reproduce=reproduce, session=kernel_session())
