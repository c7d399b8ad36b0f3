"""``/rlam/api/approvals``: the MCP proposals waiting for a person, and their decisions.

The only writing routes of the trace API: ``GET approvals`` lists what waits (the
sidebar polls it; the reply's ``now`` lets it count down to each ``expires_at`` even when
the browser's clock differs from the server's), ``POST approvals/<id>`` decides one with
``{"approved": bool, "reason": str, "edited_params": {...}}``. Jupyter checks the
token or the cookie with its XSRF header, as for every POST it serves.
"""

from __future__ import annotations

import json
import time
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler

from rlam_jupyter.frontends.server.approval_board import ApprovalBoard
from rlam_jupyter.policy import Decision


class ApprovalsHandler(APIHandler):
    def initialize(self, board: ApprovalBoard) -> None:
        self.board = board

    @tornado.web.authenticated
    def get(self) -> None:
        self.finish(json.dumps({"pending": self.board.pending(), "now": time.time()}))


class DecisionHandler(APIHandler):
    def initialize(self, board: ApprovalBoard) -> None:
        self.board = board

    def fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.finish(json.dumps({"message": message}))

    @tornado.web.authenticated
    def post(self, approval_id: str) -> None:
        try:
            decision = decision_of(json.loads(self.request.body or b"{}"))
        except (ValueError, TypeError) as exc:
            self.fail(400, str(exc))
            return
        try:
            self.board.decide(approval_id, decision)
        except KeyError:
            self.fail(
                404, f"no proposal {approval_id!r} waits for approval (decided, or timed out)"
            )
            return
        self.finish(json.dumps({"id": approval_id, "approved": decision.approved}))


def decision_of(body: Any) -> Decision:
    """The decision a POST body states; ValueError naming what is wrong."""
    if not isinstance(body, dict) or not isinstance(body.get("approved"), bool):
        raise ValueError('the body must be {"approved": true|false, "reason": "...", ...}')
    edits = body.get("edited_params")
    if edits is not None and not isinstance(edits, dict):
        raise ValueError("edited_params must be an object of parameter values")
    reason = str(body.get("reason") or "")
    if not body["approved"] and not reason:
        reason = "rejected in the sidebar"
    return Decision(body["approved"], reason, edits or None, decided_by="sidebar")


def approval_routes(board: ApprovalBoard) -> list[tuple[str, type[APIHandler], dict[str, Any]]]:
    return [
        ("approvals", ApprovalsHandler, {"board": board}),
        (r"approvals/(?P<approval_id>[^/]+)", DecisionHandler, {"board": board}),
    ]
