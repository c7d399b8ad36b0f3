"""Proposals from any OpenAI-compatible chat-completions endpoint (OpenAI, Ollama, vLLM,
llama.cpp server, LM Studio) through the official ``openai`` client.

Configuration: ``base_url`` (or ``OPENAI_BASE_URL``), ``model`` (or ``RLAM_AGENT_MODEL``),
the key from ``OPENAI_API_KEY``. The key lives only in the client object; requests as
recorded never contain it. Every transport problem becomes a :class:`ProviderError`
with a sentence saying what happened and what to try.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from rlam_jupyter.operations.agent.proposers import ProviderError
from rlam_jupyter.operations.agent.recording import public_base_url
from rlam_jupyter.operations.agent.tools import Reply, ToolCall

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"


class OpenAIProposer:
    """Chat completions with tools, ``temperature=0`` and a seed (set by the loop)."""

    provider = "openai"

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        http_retries: int = 2,
    ) -> None:
        from openai import OpenAI

        self.model = model or os.environ.get("RLAM_AGENT_MODEL") or DEFAULT_MODEL
        url: str = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.base_url: str | None = url
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            if url.rstrip("/") == DEFAULT_BASE_URL:
                raise ProviderError(
                    "configuration",
                    "no API key for api.openai.com: set OPENAI_API_KEY in the kernel's "
                    "environment, or point --base-url at a local endpoint (Ollama, vLLM)",
                )
            key = "not-needed"  # local servers accept any key; the client insists on one
        self.timeout_s = timeout_s
        self._client = OpenAI(
            base_url=url, api_key=key, timeout=timeout_s, max_retries=http_retries
        )

    def complete(self, request: Mapping[str, Any]) -> Reply:
        import openai

        where = public_base_url(self.base_url)
        try:
            response = self._client.chat.completions.create(**dict(request))
        except openai.APITimeoutError:
            raise ProviderError(
                "timeout",
                f"the endpoint {where} did not answer within {self.timeout_s:g} s; "
                "check that the server is up, or allow more time with --timeout",
            ) from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise ProviderError(
                "connection",
                f"could not talk to {where} ({type(cause).__name__}: {cause}); check that the "
                "server is running and --base-url is right",
            ) from None
        except openai.APIStatusError as exc:
            status = exc.status_code
            advice = {
                401: "check OPENAI_API_KEY",
                404: f"check --base-url and that the model {self.model!r} exists there",
                429: "the endpoint is rate limiting; wait and run the cell again",
            }.get(status, "the server failed; try again later or use another endpoint")
            raise ProviderError(
                f"http_{status}", f"{where} answered HTTP {status}: {_short(exc.message)}; {advice}"
            ) from None
        except openai.OpenAIError as exc:
            raise ProviderError(
                "bad_response", f"{where} sent an answer that is not a chat completion: {exc}"
            ) from None
        return _reply(response, where)


def _reply(response: Any, where: str | None) -> Reply:
    body = response.model_dump(mode="json", exclude_unset=True)
    choices = getattr(response, "choices", None) or []
    if not choices or getattr(choices[0], "message", None) is None:
        raise ProviderError("bad_response", f"{where} answered without a message (no choices)")
    choice = choices[0]
    message = choice.message
    calls = []
    for index, call in enumerate(message.tool_calls or []):
        function = getattr(call, "function", None)
        calls.append(
            ToolCall(
                id=str(getattr(call, "id", None) or f"call_{index}"),
                name=str(getattr(function, "name", "") or ""),
                arguments=str(getattr(function, "arguments", "") or ""),
            )
        )
    usage = getattr(response, "usage", None)
    return Reply(
        tool_calls=tuple(calls),
        content=message.content,
        finish_reason=choice.finish_reason,
        body=body,
        response_id=getattr(response, "id", None),
        response_model=getattr(response, "model", None),
        input_tokens=getattr(usage, "prompt_tokens", None),
        output_tokens=getattr(usage, "completion_tokens", None),
    )


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
