"""A scriptable fake Eye server (ThreadingHTTPServer on 127.0.0.1) and an on_drop recorder."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_KEY = "test-secret-key-0123456789"
DROP = "drop the connection"


@dataclass
class Answer:
    """What the fake server replies to one request."""

    status: int = 202
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # None: the contract's 202 body, accepting every event


@dataclass
class Received:
    """One request the fake server saw and how it answered."""

    at: float
    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None

    @property
    def events(self) -> list[dict[str, Any]]:
        return json.loads(self.body)["events"]

    @property
    def event_ids(self) -> list[str]:
        return [event["event_id"] for event in self.events]


Script = Answer | str | Callable[[list[dict[str, Any]]], Answer | str]


class FakeEyeServer:
    """Answers POST /api/v1/events/batch from a script, then with `default` once it runs out."""

    def __init__(self) -> None:
        self.script: deque[Script] = deque()
        self.default: Script = Answer()
        self.received: list[Received] = []
        self.accepted_ids: list[str] = []
        self._cond = threading.Condition()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self  # type: ignore[attr-defined]
        # A short poll interval keeps each test's teardown from waiting half a second.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def then(self, *answers: Script) -> None:
        """Queue answers for the next requests, in order."""
        with self._cond:
            self.script.extend(answers)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        """Block until `count` requests have been answered."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.received) >= count, timeout)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> Answer | str:
        with self._cond:
            step = self.script.popleft() if self.script else self.default
        events = json.loads(body)["events"]
        answer = step(events) if callable(step) else step
        if isinstance(answer, Answer) and answer.body is None:
            answer = Answer(answer.status, answer.headers, _accept_all(events))
        with self._cond:
            status = answer.status if isinstance(answer, Answer) else None
            if status == 202:
                rejected = {entry["index"] for entry in answer.body["rejected"]}
                self.accepted_ids += [
                    event["event_id"] for i, event in enumerate(events) if i not in rejected
                ]
            self.received.append(Received(time.monotonic(), path, headers, body, status))
            self._cond.notify_all()
        return answer


def _accept_all(events: list[dict[str, Any]]) -> dict[str, Any]:
    ids = [event["event_id"] for event in events]
    return {"accepted": len(ids), "event_ids": ids, "rejected": []}


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        answer = self.server.fake._answer(self.path, dict(self.headers), body)  # type: ignore[attr-defined]
        if answer == DROP:
            # Returning without a status line makes the client see the connection close.
            self.close_connection = True
            return
        payload = json.dumps(answer.body).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest's output for failures


class DropLog:
    """An on_drop callback that remembers every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[dict[str, Any]], str]] = []
        self._lock = threading.Lock()

    def __call__(self, events: list[dict[str, Any]], reason: str) -> None:
        with self._lock:
            self.calls.append((events, reason))

    def ids(self, reason: str | None = None) -> list[str]:
        """Event ids dropped, optionally only those with `reason`."""
        return [e["event_id"] for events, r in self.calls if reason in (None, r) for e in events]

    @property
    def reasons(self) -> set[str]:
        return {reason for _, reason in self.calls}
