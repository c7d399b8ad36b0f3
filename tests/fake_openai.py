"""A real loopback HTTP server speaking the OpenAI chat-completions API, for tests.

Each test scripts the answers in order (a tool call, a text, an HTTP error, a hang, a
dropped connection); the server records every request it receives, so a test can
count them. It stands in for a remote LLM only: the ``openai`` client talking to it
is the real one, unpatched.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    """One scripted answer: ``kind`` is tool_calls | text | status | hang | close."""

    kind: str
    calls: list[tuple[str, str]] = field(default_factory=list)
    """(tool name, raw JSON arguments) pairs for ``tool_calls``."""
    text: str = ""
    status: int = 200
    seconds: float = 0.0


class FakeOpenAI:
    """``with FakeOpenAI() as llm: llm.tool("split", {...}); ... llm.base_url``."""

    def __init__(self) -> None:
        self.answers: deque[Answer] = deque()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -------------------------------------------------------- scripting

    def tool(self, name: str, arguments: dict[str, Any] | str, *more: tuple[str, Any]) -> None:
        """Answer with one tool call (or several: extra ``(name, arguments)`` pairs)."""
        calls = [(name, arguments), *more]
        self.answers.append(
            Answer(
                "tool_calls",
                calls=[(n, a if isinstance(a, str) else json.dumps(a)) for n, a in calls],
            )
        )

    def text(self, content: str) -> None:
        self.answers.append(Answer("text", text=content))

    def status(self, code: int, message: str = "server error") -> None:
        self.answers.append(Answer("status", status=code, text=message))

    def hang(self, seconds: float) -> None:
        self.answers.append(Answer("hang", seconds=seconds))

    def close_connection(self) -> None:
        self.answers.append(Answer("close"))

    # -------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(body)
                fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                if not self.path.endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                answer = fake.answers.popleft() if fake.answers else None
                if answer is None:
                    self._send(500, {"error": {"message": "fake server: no scripted answer left"}})
                elif answer.kind == "status":
                    self._send(answer.status, {"error": {"message": answer.text}})
                elif answer.kind == "hang":
                    time.sleep(answer.seconds)
                    self.close_connection = True
                elif answer.kind == "close":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                else:
                    self._send(200, fake.completion(body, answer))

            def _send(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def accepts_connections(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
        except OSError:
            return False
        return True

    # -------------------------------------------------------- answers

    def completion(self, request: dict[str, Any], answer: Answer) -> dict[str, Any]:
        n = len(self.requests)
        message: dict[str, Any] = {"role": "assistant", "content": None}
        finish = "tool_calls"
        if answer.kind == "text":
            message["content"] = answer.text
            finish = "stop"
        else:
            message["tool_calls"] = [
                {
                    "id": f"call_{n}_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
                for i, (name, arguments) in enumerate(answer.calls)
            ]
        prompt = len(json.dumps(request.get("messages", [])))
        return {
            "id": f"chatcmpl-fake-{n}",
            "object": "chat.completion",
            "created": 1700000000 + n,
            "model": request.get("model", "fake"),
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt // 4,
                "completion_tokens": 7,
                "total_tokens": prompt // 4 + 7,
            },
        }


@contextmanager
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server
