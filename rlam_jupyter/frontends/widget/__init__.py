"""``browse()``: the trace browser inline, as an anywidget (Lab, Notebook 7, VS Code, ...).

For front ends without the sidebar. It asks the same questions as the REST API
(:mod:`rlam_jupyter.operations.browse.queries`) from inside the kernel, so both show the same
runs, steps and details. Pages of steps are fetched as the user pages, never the
whole run.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from rlam_jupyter.frontends.kernel import kernel_session
from rlam_jupyter.operations.browse import artifacts, queries, step_detail
from rlam_jupyter.operations.browse.snapshots import Snapshot, SnapshotCache
from rlam_jupyter.store.catalog import Connection, connect, resolve_run
from rlam_jupyter.store.layout import StoreLayout
from rlam_jupyter.store.resolve import StoreRef, resolve_store
from rlam_jupyter.values.digest import FIGURE_KIND

_STATIC = Path(__file__).parent / "static"
PAGE_SIZE = 50


class TraceBrowser(anywidget.AnyWidget):
    """Runs (fork tree), a page of the selected run's steps, one step's detail."""

    _esm = _STATIC / "browser.js"
    _css = _STATIC / "browser.css"

    store = traitlets.Unicode("").tag(sync=True)
    runs: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    run_id = traitlets.Unicode(None, allow_none=True).tag(sync=True)
    status_filter = traitlets.Unicode("").tag(sync=True)
    offset = traitlets.Int(0).tag(sync=True)
    page = traitlets.Dict().tag(sync=True)
    seq = traitlets.Int(None, allow_none=True).tag(sync=True)
    detail = traitlets.Dict().tag(sync=True)
    """The selected step (empty when none is selected)."""
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(self, layout: StoreLayout, run_id: str | None = None) -> None:
        super().__init__(store=str(layout.root))
        self._layout = layout
        self._snapshots = SnapshotCache(max_stores=1)
        self.refresh()
        if run_id is not None:
            self.run_id = run_id
        self.observe(self._on_selection, names=["run_id", "status_filter", "offset"])
        self.observe(self._on_step, names=["seq"])
        self.on_msg(self._on_message)
        self._load_page()

    def _snapshot(self) -> Snapshot:
        return self._snapshots.get(self._layout)

    def refresh(self) -> None:
        """Re-read the store (only if it changed) and redraw runs, page and detail."""
        try:
            self.runs = queries.runs(self._snapshot().con)
            self.error = ""
        except Exception as exc:  # shown in the widget; the kernel stays usable
            self.error = f"{type(exc).__name__}: {exc}"
            return
        known = {r["run_id"] for r in self.runs}
        if self.run_id not in known:
            self.run_id = self.runs[-1]["run_id"] if self.runs else None

    def _on_selection(self, change: dict[str, Any]) -> None:
        if change["name"] != "offset":
            self.offset = 0
        if change["name"] == "run_id":
            self.seq = None
        self._load_page()

    def _load_page(self) -> None:
        if self.run_id is None:
            self.page = {}
            return
        statuses = [s for s in self.status_filter.split(",") if s]
        try:
            snapshot = self._snapshot()
            self.page = queries.steps_page(
                snapshot.con,
                self.run_id,
                offset=self.offset,
                limit=PAGE_SIZE,
                statuses=statuses,
                index=snapshot.step_index(self.run_id),
            )
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def _on_step(self, change: dict[str, Any]) -> None:
        if self.seq is None or self.run_id is None:
            self.detail = {}
            return
        try:
            con = self._snapshot().materialise("artifacts", "edges")
            detail = step_detail.step(con, self.run_id, self.seq)
            for output in detail["output_artifacts"]:
                output["image"] = self._figure_image(con, output)
            self.detail = detail
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def _figure_image(self, con: Connection, output: dict[str, Any]) -> str | None:
        """A figure output's PNG as a data URL (the kernel has no URL to serve it from)."""
        if output.get("kind") != FIGURE_KIND or not output.get("restorable"):
            return None
        try:
            png = artifacts.artifact_image(con, self._layout.root, output["artifact_id"])
        except (queries.NotFoundError, ValueError):
            return None  # the preview text still says what the figure is
        return "data:image/png;base64," + base64.b64encode(png).decode()

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "refresh":
            self.refresh()
            self._load_page()
            if self.seq is not None:
                self._on_step({"name": "seq"})


def _kernel_store() -> StoreLayout | None:
    """The store of this kernel's rlam session, if ``%%rlam`` / ``%rlam`` started one."""
    session = kernel_session()
    return session.engine.layout if session is not None else None


def browse(run: str | None = None, store: StoreRef = None) -> TraceBrowser:
    """An inline trace browser of ``store`` (default: this kernel's store, else
    ``RLAM_HOME`` or ``./.rlam``), opened on ``run`` (id, name or id prefix)."""
    if isinstance(store, StoreLayout):
        layout = store
    elif store is not None:
        layout = resolve_store(store)
    else:
        layout = _kernel_store() or resolve_store()
    run_id = None
    if run is not None:
        run_id = resolve_run(connect(layout), run)
    return TraceBrowser(layout, run_id)


__all__ = ["TraceBrowser", "browse"]
