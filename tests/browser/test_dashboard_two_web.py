"""/dashboard with several web processes: long-polling offered only where it is safe, and, in
headless Chromium against two web processes sharing one port (gunicorn --workers 2, as
EYE_WEB_PROCESSES=2 runs them) with a celery worker on PostgreSQL and RabbitMQ, every page's chart.

Nothing makes a browser's requests come back to the process that holds its Socket.IO session: the
kernel hands each new connection to either process. Long-polling (several requests per session)
then meets the other process's 400 "Invalid session"; a WebSocket is one connection, so it stays.
"""

import math
import time
from itertools import pairwise
from pathlib import Path

import pytest

from app import create_app
from tests.browser.conftest import block_websocket, wait_in_page
from tests.fixtures.processes import BIN, ROOT, ServiceProcess, free_port, wait_for_http
from tests.fixtures.services import delete_broker_entities

WEB_PROCESSES = 2
PAGES = 6  # at least: more are opened (up to MAX_PAGES) until each web process holds a page's socket
MAX_PAGES = 14

# Increasing coordinates only, so the path's length is known exactly (see test_dashboard.py).
PATH = [(100, 100), (700, 100), (700, 500)]
PATH_LENGTH = sum(math.dist(a, b) for a, b in pairwise(PATH))


def app_with(tmp_path, **env):
    """An app on the embedded default made under these settings (no server needed to look at it)."""
    embedded = {"EYE_DATA_DIR": str(tmp_path), "DATABASE_URL": "", "CELERY_BROKER_URL": "",
                "SOCKETIO_MESSAGE_QUEUE": "", "EYE_WEB_PROCESSES": "", "EYE_SOCKETIO_POLLING": ""}
    return create_app({**embedded, **env, "TESTING": True})


@pytest.mark.parametrize(("env", "transports"), [
    ({}, "websocket polling"),
    ({"EYE_WEB_PROCESSES": "1"}, "websocket polling"),
    ({"EYE_WEB_PROCESSES": "2"}, "websocket"),
    ({"EYE_WEB_PROCESSES": "2", "EYE_SOCKETIO_POLLING": "1"}, "websocket polling"),  # a sticky balancer
    ({"EYE_SOCKETIO_POLLING": "0"}, "websocket"),
])
def test_the_page_is_offered_long_polling_only_where_it_is_safe(tmp_path, env, transports):
    page = app_with(tmp_path, **env).test_client().get("/dashboard").get_data(as_text=True)
    assert f'<body data-socketio-transports="{transports}">' in page


def test_several_web_processes_refuse_long_polling_at_once(tmp_path):
    """At the handshake, clearly, rather than a 400 "Invalid session" from the other process later."""
    client = app_with(tmp_path, EYE_WEB_PROCESSES="2").test_client()
    refused = client.get("/socket.io/?EIO=4&transport=polling")
    assert refused.status_code == 400
    assert "Invalid transport" in refused.get_data(as_text=True)


class WebServer:
    """A gunicorn master and its web processes on one port."""

    def __init__(self, process: ServiceProcess, port: int):
        self.process, self.port = process, port
        self.url = f"http://127.0.0.1:{port}"

    def worker_pids(self) -> list[int]:
        """The web processes: the master's children."""
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                after_name = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            if int(after_name[1]) == self.process.process.pid:  # the field after the state: ppid
                children.append(int(stat.parent.name))
        return sorted(children)

    def connections_per_process(self) -> dict[int, int]:
        """Established TCP connections to the port that each web process holds."""
        established = set()  # socket inodes
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == self.port and fields[3] == "01":
                established.add(fields[9])
        counts = {}
        for pid in self.worker_pids():
            inodes = set()
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = fd.readlink().name
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:["):-1])
            counts[pid] = len(inodes & established)
        return counts

    def sockets_per_process(self, open_pages: int, timeout: float = 15) -> dict[int, int]:
        """Which process holds each open page's socket, once idle keep-alive connections are closed."""
        deadline = time.monotonic() + timeout
        while True:
            counts = self.connections_per_process()
            if sum(counts.values()) == open_pages and len(counts) == WEB_PROCESSES:
                return counts
            if time.monotonic() > deadline:
                pytest.fail(f"{open_pages} pages open, but the web processes hold {counts} connections")
            time.sleep(0.25)


@pytest.fixture
def two_web_processes(pg_app, service_env, broker_url, start_worker_process, tmp_path) -> WebServer:
    """gunicorn with two web processes on one port, started with the launcher's config, and a worker."""
    queue = f"{service_env['EYE_QUEUE']}_two_web"
    # EYE_WEB_PROCESSES: what `make run` passes on to the web processes along with --workers.
    env = {**service_env, "EYE_QUEUE": queue, "PYTHONPATH": str(ROOT / "src"),
           "EYE_WEB_PROCESSES": str(WEB_PROCESSES)}
    worker = start_worker_process(env, concurrency=2)
    port = free_port()
    web = ServiceProcess(
        [str(BIN / "gunicorn"), "--config", "python:app.observability.gunicorn_conf",
         "--bind", f"127.0.0.1:{port}", "--workers", str(WEB_PROCESSES), "--threads", "32",
         "app:create_app()"],
        env, tmp_path / "web.log",
    )
    try:
        server = WebServer(web, port)
        wait_for_http(server.url + "/healthz", web)
        yield server
    finally:
        web.stop()
        worker.stop()  # before its queue goes, or it would declare it again
        delete_broker_entities(broker_url, [queue], [queue])


def refused_requests(responses) -> list[str]:
    """The page's failed requests, with the start of their body ("Invalid session …")."""
    refused = []
    for response in responses:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            try:
                body = response.text()[:80]
            except Exception:  # the body is gone (a closed connection): the status still tells
                body = ""
            refused.append(f"{response.status} {response.url} {body}".strip())
    return refused


def chart_a_path(browser, url: str) -> dict:
    """Open /dashboard, move the mouse along PATH, wait for the chart's distance; the page's record."""
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    responses, errors = [], []
    page.on("response", lambda response: responses.append(response))
    page.on("pageerror", lambda error: errors.append(str(error)))
    # A refused WebSocket handshake is no response in that log: "Unexpected response code: 400".
    page.on("websocket", lambda socket: socket.on("socketerror", lambda error: errors.append(f"WebSocket: {error}")))
    page.goto(f"{url}/dashboard")
    wait_in_page(page, "window.eyeDashboard.ready && window.eyeDashboard.connected")
    page.mouse.move(*PATH[0])
    for x, y in PATH[1:]:
        page.mouse.move(x, y, steps=40)
        # Spread over several batches: a process sets up its Socket.IO listener on the message queue
        # at its first connection, and metrics emitted before it is bound never reach it; the
        # batches that follow carry the session's totals.
        page.wait_for_timeout(400)
    wait_in_page(page, f"Math.abs((window.eyeDashboard.latest || {{}}).distance - {PATH_LENGTH})"
                       f" <= {0.01 * PATH_LENGTH}", timeout=20)
    state = page.evaluate("() => ({latest: window.eyeDashboard.latest,"
                          " transport: window.eyeDashboard.socket.io.engine.transport.name})")
    return {"page": page, "state": state, "responses": responses, "errors": errors}


@pytest.mark.browser
def test_every_page_gets_its_metrics_whichever_process_holds_its_socket(browser, two_web_processes):

    pages, holders = [], {}
    while len(pages) < PAGES or 0 in holders.values():
        assert len(pages) < MAX_PAGES, f"after {len(pages)} pages one process still held none: {holders}"
        record = chart_a_path(browser, two_web_processes.url)
        pages.append(record)
        assert refused_requests(record["responses"]) == [], f"page {len(pages)}: requests refused"
        assert record["errors"] == []
        assert record["state"]["latest"]["distance"] == pytest.approx(PATH_LENGTH, rel=0.01)
        assert record["state"]["latest"]["points"] >= 50
        # One connection for the session's life: nothing for the other process to refuse.
        assert record["state"]["transport"] == "websocket"
        if len(pages) >= PAGES:
            holders = two_web_processes.sockets_per_process(open_pages=len(pages))
    # Still connected, and nothing refused since (no reconnection through the other process).
    for number, record in enumerate(pages, 1):
        assert record["page"].evaluate("window.eyeDashboard.connected"), f"page {number} lost its socket"
        assert refused_requests(record["responses"]) == [], f"page {number}: requests refused"
        assert record["errors"] == [], f"page {number}"


@pytest.mark.browser
def test_where_websocket_is_blocked_the_page_does_not_fall_back_to_long_polling(browser, two_web_processes):
    """Long-polling would meet the other process: the page says it is not connected instead."""

    page = browser.new_page()
    polls = []
    page.on("request", lambda request: "transport=polling" in request.url and polls.append(request.url))
    block_websocket(page, free_port())
    page.goto(f"{two_web_processes.url}/dashboard")
    wait_in_page(page, "window.eyeDashboard.ready && window.eyeDashboard.error !== null")
    time.sleep(2)  # a reconnection attempt or two (the first comes after about a second)
    status = page.evaluate("document.getElementById('status').textContent")
    assert status.startswith("not connected: websocket error")
    assert polls == []
