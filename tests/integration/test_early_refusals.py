"""A large body refused before it is read still gets its answer: the status and JSON, never a reset.

The client is the kind that resets expose: a small send buffer (so the kernel cannot swallow the
whole body, as it does on loopback with default buffers), sending the whole body while it reads.
"""

import json
import socket
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest

BODY_SIZE = 600_000
OVERSIZED = 1_500_000  # over the 1 MiB limit
TRIES = 50
PARALLEL = 5
SEND_BUFFER = 16 * 1024
TIMEOUT = 10.0


def json_body(size: int) -> bytes:
    """A JSON object of exactly `size` bytes (never parsed: the server refuses it unread)."""
    return b'{"pad": "' + b"x" * (size - 11) + b'"}'


class Answer:
    """One HTTP response read off a socket."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    @property
    def keeps_alive(self) -> bool:
        return self.headers.get("connection", "").lower() != "close"


def read_answer(sock: socket.socket, buffer: bytearray) -> Answer:
    """Read one response with a Content-Length; raises OSError or EOFError if it does not all arrive."""
    while b"\r\n\r\n" not in buffer:
        receive(sock, buffer)
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip()
               for name, _, value in (line.partition(":") for line in lines[1:])}
    length = int(headers["content-length"])
    buffer[:] = rest
    while len(buffer) < length:
        receive(sock, buffer)
    body = bytes(buffer[:length])
    del buffer[:length]
    return Answer(int(lines[0].split()[1]), headers, body)


def receive(sock: socket.socket, buffer: bytearray) -> None:
    data = sock.recv(65536)
    if not data:
        raise EOFError("the server closed before the answer was complete")
    buffer += data


def exchange(address: tuple[str, int], head: bytes, body: bytes) -> tuple[str, Answer | None]:
    """Send one request on a fresh connection while reading its answer; returns (outcome, answer).

    Outcomes: "ok", "answer lost" (reset or closed before the whole answer), "send reset" (the
    answer came but the rest of the body could not be sent, which a client that sends before it
    reads sees as a lost answer), "keep-alive broken" (answered `keep-alive`, yet the next request
    on the socket got no answer).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Before connect, so the window the server sees is small too.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    sock.settimeout(TIMEOUT)
    send_errors: list[OSError] = []

    def send() -> None:
        try:
            sock.sendall(head + body)
        except OSError as exc:
            send_errors.append(exc)

    sender = threading.Thread(target=send, daemon=True)
    try:
        sock.connect(address)
        sender.start()
        buffer = bytearray()
        try:
            answer = read_answer(sock, buffer)
        except (OSError, EOFError):
            return "answer lost", None
        sender.join(TIMEOUT)
        if send_errors or sender.is_alive():
            return "send reset", answer
        if answer.keeps_alive:
            try:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: eye\r\n\r\n")
                if read_answer(sock, buffer).status != 200:
                    return "keep-alive broken", answer
            except (OSError, EOFError):
                return "keep-alive broken", answer
        return "ok", answer
    finally:
        sock.close()
        sender.join(TIMEOUT)


@pytest.fixture
def web(pg_app, service_env, start_web_process):
    """The web process run as `make run` runs it, on this run's PostgreSQL and RabbitMQ."""
    _, url = start_web_process(service_env)
    parts = urlsplit(url)
    return parts.hostname, parts.port


def request_head(path: str, body: bytes, key: str | None, content_type: str = "application/json") -> bytes:
    key_line = f"X-API-Key: {key}\r\n" if key else ""
    return (f"POST {path} HTTP/1.1\r\nHost: eye\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{key_line}\r\n").encode()


CASES = {
    # name: (path, body size, expected status, the key's scope or None, content type)
    "401 no key": ("/api/v1/events", BODY_SIZE, 401, None, "application/json"),
    "403 read-only key": ("/api/v1/events/batch", BODY_SIZE, 403, "read", "application/json"),
    "415 wrong content type": ("/api/v1/events", BODY_SIZE, 415, "ingest", "text/plain"),
    "413 over 1 MiB": ("/api/v1/events/batch", OVERSIZED, 413, "ingest", "application/json"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_early_refusal_is_answered_not_reset(web, pg_key, case):
    path, size, status, scope, content_type = CASES[case]
    body = json_body(size)
    head = request_head(path, body, pg_key(scope) if scope else None, content_type)

    outcomes = Counter()
    # A few connections at once: with a small send buffer each one is slow (bound by TCP's
    # acknowledgements, not by the CPU), and 50 in a row would take most of a minute.
    with ThreadPoolExecutor(PARALLEL) as pool:
        for outcome, answer in pool.map(lambda _: exchange(web, head, body), range(TRIES)):
            outcomes[outcome] += 1
            if answer is not None:
                assert answer.status == status
                assert json.loads(answer.body)["code"] == status

    print(f"{case}: {dict(outcomes)}")
    assert outcomes == {"ok": TRIES}, f"{case}: {dict(outcomes)} in {TRIES} tries"


def test_drained_and_accepted_bodies_keep_their_connection(web, pg_key):
    """A small refused body (the server drains it) and an accepted event (read) keep alive."""
    event = json.dumps({
        "session_id": str(uuid.uuid4()), "category": "page interaction", "name": "pageview",
        "data": {"host": "shop.example.com", "path": "/"},
        "timestamp": datetime.now(UTC).isoformat(),
    }).encode()
    small = json_body(10_000)
    for head, body, status in [
        (request_head("/api/v1/events", small, None), small, 401),
        (request_head("/api/v1/events", event, pg_key("ingest")), event, 202),
    ]:
        outcome, answer = exchange(web, head, body)
        assert (outcome, answer.status, answer.keeps_alive) == ("ok", status, True)
