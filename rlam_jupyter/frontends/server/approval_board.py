"""Proposals of MCP clients waiting for a person, in the Jupyter server.

A kernel asks for a decision through its stdin (:mod:`frontends.mcp.kernel_answers`);
the server puts the request on this board, where the sidebar lists it
(``GET /rlam/api/approvals``) and decides it (``POST /rlam/api/approvals/<id>``). The
kernel's ``input()`` is answered with the decision; a request nobody decides within its
timeout is answered as a refusal saying so, so an MCP call never hangs on approval.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ulid import ULID

from rlam_jupyter.frontends.mcp.kernel_protocol import ApprovalRequest
from rlam_jupyter.policy import Decision


@dataclass(frozen=True)
class Pending:
    """One proposal on the board: which notebook asks, and what."""

    approval_id: str
    notebook: str
    request: ApprovalRequest
    asked_at: float
    timeout_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.approval_id,
            "notebook": self.notebook,
            "asked_at": self.asked_at,
            "expires_at": self.asked_at + self.timeout_s,
            **asdict(self.request),
        }


@dataclass
class ApprovalBoard:
    """The server's waiting proposals and the futures their kernels wait on."""

    timeout_s: float = 600.0
    waiting: dict[str, tuple[Pending, asyncio.Future[Decision]]] = field(default_factory=dict)

    def pending(self) -> list[dict[str, Any]]:
        return [entry.to_json() for entry, _ in self.waiting.values()]

    async def decide_later(self, notebook: str, request: ApprovalRequest) -> Decision:
        """Wait for the sidebar's decision on ``request``, or a refusal once time is up."""
        entry = Pending(str(ULID()), notebook, request, time.time(), self.timeout_s)
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self.waiting[entry.approval_id] = (entry, future)
        try:
            return await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            return Decision(
                False,
                f"no decision within {self.timeout_s:g} s (RlamMCP.approval_timeout)",
                decided_by="rlam",
            )
        finally:
            self.waiting.pop(entry.approval_id, None)

    def decide(self, approval_id: str, decision: Decision) -> None:
        """Give a waiting proposal its decision; KeyError when it is not waiting."""
        _entry, future = self.waiting[approval_id]
        if not future.done():
            future.set_result(decision)

    def drop(self, notebook: str, reason: str) -> None:
        """Refuse what a notebook's kernel was waiting for (the kernel died)."""
        for entry, future in list(self.waiting.values()):
            if entry.notebook == notebook and not future.done():
                future.set_result(Decision(False, reason, decided_by="rlam"))
