"""The proposer interface shared by the scripted and the OpenAI-compatible proposers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from rlam_jupyter.errors import RlamError
from rlam_jupyter.operations.agent.tools import Reply


class ProviderError(RlamError):
    """The proposer could not answer (endpoint down, timeout, HTTP error, bad response).

    ``kind`` is a short machine-readable cause (``timeout``, ``connection``,
    ``http_429``, ``http_500``, ``bad_response``); the message says what to do.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Proposer(Protocol):
    """Answers a chat-completions request with tool calls (proposals) or a final text."""

    provider: str
    model: str
    base_url: str | None

    def complete(self, request: Mapping[str, Any]) -> Reply:
        """Answer ``request`` (an OpenAI chat-completions body); raise :class:`ProviderError`."""
        ...
