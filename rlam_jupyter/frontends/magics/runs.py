"""``%rlam status`` and ``%rlam config KEY=VALUE``: the state of this kernel's session."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError

from rlam_jupyter.engine import Engine
from rlam_jupyter.engine.executors import executor_for
from rlam_jupyter.engine.session import Session
from rlam_jupyter.engine.trace import StepsView
from rlam_jupyter.store.remote import store_for_layout


def status(session: Session) -> Any:
    remote = store_for_layout(session.engine.layout)
    if remote is not None:  # an s3:// store: say what is still to upload, and retry now
        remote.uploader.wake()
        print(remote.status().summary())
    run = session.current
    if run is None:
        print(f"no open run; store: {session.engine.layout.root}")
        return None
    pending = len(run.writer.unwritten)
    if pending:
        still = run.writer.retry_unwritten()
        print(f"{pending - still} pending trace record(s) written; {still} still pending")
    caption = (
        f"run {run.name} ({run.run_id}) · seed {run.seed} · {len(run.results)} step(s) · "
        f"store {session.engine.layout.root}"
    )
    return StepsView(run.results, caption)


def config(session: Session, items: list[str]) -> None:
    for item in items:
        key, _, value = item.partition("=")
        if key == "store":
            session.close()
            session.engine = Engine(value or None, policy=session.engine.policy)
            session.runs.clear()
            session.current = None
            print(f"trace store: {session.engine.layout.root}")
        elif key == "executor":
            session.engine.executor.close()
            session.engine.executor = executor_for(value)
            print(f"steps run on: {session.engine.executor.name}")
        else:
            raise UsageError(f"unknown config key {key!r}; known: store, executor")
