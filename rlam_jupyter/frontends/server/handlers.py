"""REST API of the trace browser, under ``<base_url>/rlam/api/``.

Every handler requires Jupyter authentication (token or cookie); the trace routes only
read, so any other method is refused (XSRF first, then 405). The approval routes
(:mod:`.approval_handlers`) are the one place a person's decision comes in. Queries run on one worker
thread, so a slow first read of a big store never blocks the server's event loop.
Errors are JSON: ``{"message": "..."}``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from rlam_jupyter.errors import RlamError
from rlam_jupyter.frontends.server.approval_board import ApprovalBoard
from rlam_jupyter.frontends.server.approval_handlers import approval_routes
from rlam_jupyter.operations.browse import artifacts, queries, step_detail
from rlam_jupyter.operations.browse.snapshots import (
    PathError,
    Snapshot,
    SnapshotCache,
    resolve_request_store,
    store_stamp,
)

_FAILED = object()
_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rlam-api")
_CACHE = SnapshotCache()


class TraceHandler(APIHandler):
    """Base: resolves the store from ``?path=``, runs a query, answers JSON."""

    @property
    def root_dir(self) -> str:
        return str(self.settings.get("rlam_root_dir") or self.settings["server_root_dir"])

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=str))

    def fail(self, status: int, message: str) -> None:
        self.reply({"message": message}, status)

    def int_argument(self, name: str, default: int) -> int:
        raw = self.get_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise PathError(f"{name} must be an integer, got {raw!r}", 400) from None

    def list_argument(self, name: str) -> list[str]:
        """``?status=failed,rejected`` or ``?status=failed&status=rejected``."""
        return [v for raw in self.get_arguments(name) for v in raw.split(",") if v]

    async def answer(self, query: Callable[[Snapshot], Any]) -> None:
        """Resolve the store, run ``query`` on the worker thread, reply (or fail) as JSON."""
        data = await self.query(query)
        if data is not _FAILED:
            self.reply(data)

    async def query(self, query: Callable[[Snapshot], Any]) -> Any:
        """``query``'s result, or ``_FAILED`` once the error has been answered as JSON."""
        try:
            layout = resolve_request_store(self.root_dir, self.get_argument("path", ""))

            def work() -> Any:
                return query(_CACHE.get(layout))

            data = await asyncio.get_running_loop().run_in_executor(_WORKER, work)
        except PathError as exc:
            self.fail(exc.status, str(exc))
        except queries.NotFoundError as exc:
            self.fail(404, str(exc))
        except (ValueError, RlamError) as exc:
            self.fail(400, str(exc))
        else:
            return data
        return _FAILED


def _run_id(snapshot: Snapshot, ref: str) -> str:
    return queries.resolve_run(snapshot.con, ref)


def _steps_page(
    snapshot: Snapshot,
    run_id: str,
    offset: int,
    limit: int,
    statuses: list[str],
    actions: list[str],
) -> dict[str, Any]:
    return queries.steps_page(
        snapshot.con,
        run_id,
        offset=offset,
        limit=limit,
        statuses=statuses,
        actions=actions,
        index=snapshot.step_index(run_id),
    )


class StampHandler(TraceHandler):
    """``GET stamp``: changes whenever the store does; the sidebar polls it cheaply."""

    @tornado.web.authenticated
    async def get(self) -> None:
        try:
            layout = resolve_request_store(self.root_dir, self.get_argument("path", ""))
        except PathError as exc:
            self.fail(exc.status, str(exc))
            return
        stamp = await asyncio.get_running_loop().run_in_executor(_WORKER, store_stamp, layout)
        self.reply(
            {"store": str(layout.root), "exists": layout.journal_dir.is_dir(), "stamp": stamp}
        )


class RunsHandler(TraceHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        await self.answer(
            lambda s: {
                "store": str(s.layout.root),
                "stamp": s.stamp,
                "runs": queries.runs(s.con),
            }
        )


class RunHandler(TraceHandler):
    @tornado.web.authenticated
    async def get(self, ref: str) -> None:
        await self.answer(lambda s: queries.run(s.con, _run_id(s, ref)))


class StepsHandler(TraceHandler):
    @tornado.web.authenticated
    async def get(self, ref: str) -> None:
        try:
            offset = self.int_argument("offset", 0)
            limit = self.int_argument("limit", 100)
        except PathError as exc:
            self.fail(exc.status, str(exc))
            return
        statuses, actions = self.list_argument("status"), self.list_argument("action")
        await self.answer(
            lambda s: {
                "stamp": s.stamp,
                **_steps_page(s, _run_id(s, ref), offset, limit, statuses, actions),
            }
        )


class StepHandler(TraceHandler):
    @tornado.web.authenticated
    async def get(self, ref: str, seq: str) -> None:
        await self.answer(
            lambda s: step_detail.step(
                s.materialise("artifacts", "edges"), _run_id(s, ref), int(seq)
            )
        )


class GraphHandler(TraceHandler):
    @tornado.web.authenticated
    async def get(self, ref: str) -> None:
        await self.answer(
            lambda s: artifacts.graph(s.materialise("artifacts", "edges"), _run_id(s, ref))
        )


class EnvironmentHandler(TraceHandler):
    @tornado.web.authenticated
    async def get(self, ref: str) -> None:
        await self.answer(lambda s: artifacts.environment(s.con, _run_id(s, ref)))


class ArtifactHandler(TraceHandler):
    @tornado.web.authenticated
    async def get(self, artifact_id: str) -> None:
        await self.answer(lambda s: artifacts.artifact(s.materialise("artifacts"), artifact_id))


class ArtifactImageHandler(TraceHandler):
    """``GET artifacts/<id>/image``: the PNG of a figure artifact, for the step detail.
    Content-addressed, so the browser may keep it; never sniffed as anything but PNG."""

    @tornado.web.authenticated
    async def get(self, artifact_id: str) -> None:
        png = await self.query(
            lambda s: artifacts.artifact_image(
                s.materialise("artifacts"), s.layout.root, artifact_id
            )
        )
        if png is _FAILED:
            return
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "private, max-age=86400, immutable")
        self.finish(png, set_content_type="image/png")


class ActionsHandler(TraceHandler):
    """JSON Schemas of the actions the server knows (the built-in catalogue and any
    action module imported by the server); the fork form falls back to the recorded
    parameters' types for actions defined only in a kernel."""

    @tornado.web.authenticated
    async def get(self) -> None:
        data = await asyncio.get_running_loop().run_in_executor(_WORKER, artifacts.action_schemas)
        self.reply({"actions": data})


_RUN = r"(?P<ref>[^/]+)"
ROUTES: list[tuple[str, type[TraceHandler]]] = [
    ("stamp", StampHandler),
    ("runs", RunsHandler),
    (rf"runs/{_RUN}", RunHandler),
    (rf"runs/{_RUN}/steps", StepsHandler),
    (rf"runs/{_RUN}/steps/(?P<seq>-?\d+)", StepHandler),
    (rf"runs/{_RUN}/graph", GraphHandler),
    (rf"runs/{_RUN}/environment", EnvironmentHandler),
    (r"artifacts/(?P<artifact_id>[^/]+)", ArtifactHandler),
    (r"artifacts/(?P<artifact_id>[^/]+)/image", ArtifactImageHandler),
    ("actions", ActionsHandler),
]


def setup_handlers(web_app: Any, root_dir: str, board: ApprovalBoard) -> None:
    """Register every route under ``<base_url>/rlam/api/``."""
    web_app.settings["rlam_root_dir"] = root_dir
    base = url_path_join(web_app.settings["base_url"], "rlam", "api")
    routes: list[Any] = [(pattern, handler, {}) for pattern, handler in ROUTES]
    routes += approval_routes(board)
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, pattern) + "/?$", handler, args)
            for pattern, handler, args in routes
        ],
    )
