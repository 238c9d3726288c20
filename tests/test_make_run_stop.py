"""Ctrl-C stops `make run` within 10 s and leaves none of its processes behind.

On the embedded default and on PostgreSQL + RabbitMQ; with Socket.IO clients connected (WebSocket,
long-polling), a polling client gone without a word, an idle keep-alive connection, or a backlog in
the worker (which loses nothing: a second start stores it all).

A terminal's Ctrl-C sends SIGINT to its foreground process group: here the group of `make`, started
in a session of its own. The stop is over when no process of that session runs any more (nor any
that names the run's data folder: a server started in a session of its own).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import socketio
from kombu import Connection
from sqlalchemy import create_engine, text

from tests.fixtures.apps import wait_for
from tests.fixtures.processes import free_port
from tests.test_make_run import processes_of_session, read_lines_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
# From Ctrl-C until nothing of `make run` is left.
STOP_LIMIT = 10.0
WARM_UP_EVENT = {"category": "page interaction", "name": "pageview", "timestamp": "2021-01-01T09:15:27Z",
                 "data": {"host": "example.com", "path": "/"}}


def live_processes(session: int, naming: str | None = None) -> dict[int, str]:
    """The processes still running (a zombie has finished) of a session, or whose command line names
    `naming`, with their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            if stat[stat.rindex(")") + 2] == "Z":
                continue
            if os.getsid(int(entry.name)) == session or (naming and naming in command):
                found[int(entry.name)] = command
        except (OSError, ProcessLookupError):
            continue
    return found


class MakeRun:
    """`make run` in a session of its own, as a terminal starts it, and what it printed."""

    def __init__(self, settings: dict, log_path: Path):
        """`settings` name EYE_DATA_DIR at least: never the checkout's own var/."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "SOCKETIO_MESSAGE_QUEUE", "EYE_DATA_DIR",
                            "EYE_QUEUE", "EYE_SOCKETIO_CHANNEL")}
        self.log_path = log_path
        self.data_dir = settings["EYE_DATA_DIR"]
        with open(log_path, "ab") as log:
            # `-o`: never remake the install stamp (see test_make_run). PYTHONPATH: this tree's code.
            self.process = subprocess.Popen(
                ["make", "-o", ".venv/.installed", "run"], cwd=ROOT, stdout=subprocess.PIPE, stderr=log,
                env={**env, **settings, "EYE_PORT": str(free_port()), "PYTHONPATH": str(ROOT / "src")},
                text=True, start_new_session=True)
        self.session = self.process.pid
        self.printed = read_lines_until(self.process, {"EYE_URL", "EYE_API_KEY"})
        # Its children write to this pipe too: keep it read, so that a full pipe never blocks them.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        if set(self.printed) != {"EYE_URL", "EYE_API_KEY"}:
            self.kill()
            pytest.fail(f"make run did not start:\n{self.log()}")
        # The worker may still be starting when the web answers; a user stops a service that ran.
        session_id = str(uuid.uuid4())
        post_events(self, [{**WARM_UP_EVENT, "session_id": session_id}])
        wait_for(lambda: stored(self, session_id), timeout=30)

    @property
    def url(self) -> str:
        return self.printed["EYE_URL"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def processes(self) -> dict[int, str]:
        """Its processes still running: those of its session, and any naming its data folder (a
        server it started in a session of its own)."""
        return live_processes(self.session, naming=self.data_dir)

    def stop(self, launcher_only: bool = False, presses: int = 1) -> float:
        """Ctrl-C (SIGINT to make's process group; or to the launcher alone), pressed once or more:
        seconds until all is gone. Fails, once it has killed what is left, past STOP_LIMIT.
        """
        running = processes_of_session(self.session)
        assert set(running) == {"celery", "gunicorn"}, f"not all of it ran before the stop: {running}"
        [launcher] = [pid for pid, command in self.processes().items() if "app.launcher" in command]
        started = time.monotonic()
        for press in range(presses):
            time.sleep(0.3 if press else 0)
            if launcher_only:
                os.kill(launcher, signal.SIGINT)
            else:
                os.killpg(self.session, signal.SIGINT)
        while time.monotonic() - started < STOP_LIMIT:
            if self.process.poll() is not None and not self.processes():
                seconds = time.monotonic() - started
                print(f"stopped in {seconds:.1f} s")
                return seconds
            time.sleep(0.05)
        left = self.processes()
        self.kill()
        pytest.fail(f"{len(left)} processes outlived Ctrl-C by {STOP_LIMIT:.0f} s: {left}\n{self.log()}")

    def kill(self) -> None:
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=10)


@pytest.fixture
def make_run(tmp_path):
    """Factory: `make run` started with the given settings; whatever it leaves is killed afterwards."""
    started = []

    def start(settings: dict) -> MakeRun:
        run = MakeRun(settings, tmp_path / f"make-run-{len(started)}.log")
        started.append(run)
        return run

    yield start
    for run in started:
        run.kill()


@pytest.fixture(scope="module")
def real_servers(make_database, make_vhost) -> dict:
    """Settings for `make run` on PostgreSQL and RabbitMQ: a database and a virtual host of its own."""
    return {"DATABASE_URL": make_database(), "CELERY_BROKER_URL": make_vhost()}


@pytest.fixture
def backend(request, tmp_path) -> dict:
    """Settings for `make run`: the embedded default in a fresh data folder, or the real servers."""
    settings = {"EYE_DATA_DIR": str(tmp_path / "var")}
    if request.param == "real servers":
        settings.update(request.getfixturevalue("real_servers"))
    return settings


def dashboard_client(url: str, transport: str) -> socketio.Client:
    """A Socket.IO client connected as /dashboard connects (with a fresh token), over one transport."""
    token = requests.post(f"{url}/dashboard/token", timeout=5).json()["token"]
    client = socketio.Client(reconnection=False)
    client.connect(url, auth={"token": token}, transports=[transport], wait_timeout=5)
    return client


VANISHING_CLIENT = """
import sys, socketio
client = socketio.Client(reconnection=False)
client.connect(sys.argv[1], auth={"token": sys.argv[2]}, transports=["polling"], wait_timeout=5)
print("connected", flush=True)
sys.stdin.read()
"""


def vanish_while_polling(url: str) -> None:
    """A long-polling client killed while its next poll waits on the server (a closed laptop)."""
    token = requests.post(f"{url}/dashboard/token", timeout=5).json()["token"]
    client = subprocess.Popen([sys.executable, "-c", VANISHING_CLIENT, url, token],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout.readline().strip() == "connected"
        time.sleep(0.5)  # its next poll reaches the server and waits there for a packet
    finally:
        client.kill()
        client.wait()


def idle_keep_alive_connection(url: str) -> socket.socket:
    """An HTTP/1.1 connection that got its answer and stays open, as a browser keeps one."""
    address = urlsplit(url)
    connection = socket.create_connection((address.hostname, address.port), timeout=5)
    connection.sendall(f"GET /healthz HTTP/1.1\r\nHost: {address.netloc}\r\n\r\n".encode())
    assert connection.recv(4096).startswith(b"HTTP/1.1 200")
    return connection


def post_events(run: MakeRun, events: list[dict]) -> list[str]:
    """Send a batch with make run's demo key; the accepted event ids."""
    response = requests.post(f"{run.url}/api/v1/events/batch", json={"events": events}, timeout=10,
                             headers={"X-API-Key": run.printed["EYE_API_KEY"]})
    assert response.status_code == 202, response.text
    return response.json()["event_ids"]


def pageviews(sample, session_id: str, count: int) -> list[dict]:
    return [{**sample("pageview"), "session_id": session_id} for _ in range(count)]


def stored(run: MakeRun, session_id: str) -> list[dict]:
    """The events of one session that make run's API returns."""
    response = requests.get(f"{run.url}/api/v1/events", params={"session_id": session_id, "limit": 1000},
                            headers={"X-API-Key": run.printed["EYE_API_KEY"]}, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def hold(run: MakeRun, scenario: str, sample) -> list:
    """Bring `run` into a scenario; returns what must stay open (and be closed after the stop)."""
    if scenario == "idle":  # a few requests, all answered
        assert requests.get(f"{run.url}/healthz", timeout=5).status_code == 200
        post_events(run, pageviews(sample, str(uuid.uuid4()), 3))
        return []
    if scenario in ("websocket", "polling"):
        return [dashboard_client(run.url, scenario)]
    if scenario == "vanished":
        vanish_while_polling(run.url)
        return []
    if scenario == "keep-alive":
        return [idle_keep_alive_connection(run.url)]
    raise ValueError(scenario)


def release(held: list) -> None:
    for thing in held:
        (thing.disconnect if isinstance(thing, socketio.Client) else thing.close)()


@pytest.mark.parametrize("backend, scenario", [
    *[("embedded", scenario) for scenario in ("websocket", "polling", "vanished", "keep-alive")],
    # A connection's state (keep-alive, a polling session, a vanished client) ends in the web process
    # alike on both; what differs is the Socket.IO channel's listener (the folder broker's or
    # RabbitMQ's), held by a WebSocket on both, and idle on RabbitMQ (the suite's 15-minute budget
    # keeps the rest single).
    *[("real servers", scenario) for scenario in ("idle", "websocket")],
], indirect=["backend"])
def test_ctrl_c_stops_everything_within_10_s(make_run, backend, scenario, sample):
    run = make_run(backend)
    held = hold(run, scenario, sample)
    try:
        run.stop()
    finally:
        release(held)


@pytest.mark.parametrize("backend", ["embedded", "real servers"], indirect=True)
def test_sigint_to_the_launcher_alone_stops_everything_and_it_starts_again(make_run, backend, sample):
    run = make_run(backend)
    held = [dashboard_client(run.url, "websocket"), dashboard_client(run.url, "polling")]
    try:
        run.stop(launcher_only=True)
    finally:
        release(held)

    again = make_run(backend)  # on the same data
    session_id = str(uuid.uuid4())
    accepted = post_events(again, pageviews(sample, session_id, 2))
    assert wait_for(lambda: sorted(e["event_id"] for e in stored(again, session_id)) == sorted(accepted))
    again.stop()


def queued_messages(broker_url: str, queue: str = "eye.events") -> int:
    """Messages waiting in the queue (not those a consumer holds unacknowledged)."""
    with Connection(broker_url, connect_timeout=2) as connection:
        return connection.default_channel.queue_declare(queue, passive=True).message_count


@pytest.mark.parametrize("presses", [1, 2], ids=["ctrl-c", "ctrl-c twice"])
def test_ctrl_c_with_a_backlog_stops_within_10_s_and_loses_nothing(make_run, real_servers, tmp_path, sample,
                                                                   presses):
    """Once: a graceful stop (running tasks finish). Twice: at once (Celery's cold shutdown)."""
    settings = {**real_servers, "EYE_DATA_DIR": str(tmp_path / "var")}
    run = make_run(settings)
    database = create_engine(real_servers["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg2://", 1))
    session_id = str(uuid.uuid4())

    def stored_ids() -> list[str]:
        with database.connect() as connection:
            rows = connection.execute(text("SELECT event_id FROM events WHERE session_id = :s"), {"s": session_id})
            return [str(event_id) for (event_id,) in rows]

    try:
        # A backlog, made certain: the worker is paused while the messages pile up (one per request),
        # then resumed with the sessions table locked, so that it blocks inside its transaction,
        # holding its messages unacknowledged, when Ctrl-C comes. (Left to run, it could drain the
        # whole backlog before the stop reached it.)
        worker = processes_of_session(run.session)["celery"]
        for pid in worker:
            os.kill(pid, signal.SIGSTOP)
        try:
            accepted = [event_id for _ in range(12) for event_id in post_events(run, pageviews(sample, session_id, 500))]
        finally:
            with database.connect() as lock:
                lock.execute(text("LOCK TABLE sessions IN EXCLUSIVE MODE"))
                for pid in worker:
                    os.kill(pid, signal.SIGCONT)
                wait_for(lambda: lock.execute(text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                    "WHERE c.relname = 'sessions' AND NOT l.granted")).scalar() >= 1, timeout=30)
                run.stop(presses=presses)
                lock.rollback()
        stored_then = len(stored_ids())
        assert stored_then < len(accepted), "no backlog was left to stop with"
        assert queued_messages(real_servers["CELERY_BROKER_URL"]) > 0

        # What the worker held unacknowledged went back to the queue: the next start stores it all,
        # each event once.
        again = make_run(settings)
        assert wait_for(lambda: sorted(stored_ids()) == sorted(accepted), timeout=60)
        again.stop()
    finally:
        database.dispose()
    print(json.dumps({"accepted": len(accepted), "stored at the stop": stored_then}))


CTRL_C_MEETS_SIGQUIT = """
import os, signal, sys
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from gunicorn.workers.gthread import ThreadWorker

from app.observability import gunicorn_conf


class MasterSignalsMidShutdown:
    '''The thread pool's work queue; the master's SIGQUIT arrives as shutdown() holds its lock.'''

    def __init__(self, queue):
        self.queue = queue

    def put(self, item, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGQUIT)
        self.queue.put(item, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.queue, name)


worker = ThreadWorker.__new__(ThreadWorker)  # gthread's own handlers, without a server around them
worker.alive, worker.wsgi, worker.cfg = True, None, SimpleNamespace(worker_int=lambda worker: None)
worker.tpool = ThreadPoolExecutor(1)
signal.signal(signal.SIGINT, worker.handle_quit)  # as gunicorn's init_signals sets them
signal.signal(signal.SIGQUIT, worker.handle_quit)
gunicorn_conf.post_worker_init(worker)
worker.tpool._work_queue = MasterSignalsMidShutdown(worker.tpool._work_queue)
os.kill(os.getpid(), signal.SIGINT)  # the terminal's Ctrl-C: handle_quit exits the process
sys.exit(3)
"""


def test_a_web_worker_hit_by_ctrl_c_and_its_masters_sigquit_at_once_exits():
    """The race behind a worker that outlived `make run`, made certain: the second stop signal lands
    while gthread's handler for the first holds its thread pool's shutdown lock."""
    worker = subprocess.Popen([sys.executable, "-c", CTRL_C_MEETS_SIGQUIT], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    try:
        assert worker.wait(timeout=5) == 0
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
        pytest.fail("the worker deadlocked in its own signal handler")
