"""`make run`: migrate, make a demo key, and run the whole service (web + Socket.IO + a worker).

On the embedded default (no DATABASE_URL / CELERY_BROKER_URL) everything lives in EYE_DATA_DIR:
a SQLite file and a folder-backed broker, so nothing needs installing.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

from app import create_app
from app.config import EMBEDDED_BROKER_URL, data_dir
from app.observability.logs import configure_logging


def prepare(app) -> dict[str, str]:
    """Apply the migrations and make fresh demo keys; returns the lines to print."""
    from flask_migrate import upgrade

    from app.identity import keys

    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory)
        keys.get_or_create_application("demo")
        demo = keys.create_key("demo", ["ingest", "read"])
        keys.get_or_create_application("operators")
        admin = keys.create_key("operators", ["admin"])
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


def wait_until_up(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the web process exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return
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

    app = create_app()
    lines = prepare(app)
    # After the migrations: alembic's env.py installs its own console handler.
    configure_logging(os.environ.get("EYE_LOG_LEVEL", "WARNING"))
    bin_dir = os.path.dirname(sys.executable)
    # One SQLite file tolerates one writer at a time: one worker process is plenty there.
    concurrency = os.environ.get("EYE_WORKER_CONCURRENCY", "1" if "sqlite" in
                                 app.config["SQLALCHEMY_DATABASE_URI"] else "2")
    # On one machine the worker yields the CPU to the web process: a client waits for its answer,
    # the queue does not, and the broker holds the backlog safely meanwhile (docs/benchmarks.md).
    worker_nice = int(os.environ.get("EYE_WORKER_NICE", "10"))
    worker = subprocess.Popen([
        os.path.join(bin_dir, "celery"), "-A", "tasks.worker", "worker",
        "--loglevel", os.environ.get("EYE_LOG_LEVEL", "WARNING"), "--concurrency", concurrency,
        "--without-gossip", "--without-mingle", "--hostname", f"eye-{port}@%h",
    ], preexec_fn=lambda: os.nice(worker_nice))
    web = subprocess.Popen([
        os.path.join(bin_dir, "gunicorn"), "--config", "python:app.observability.gunicorn_conf",
        "--bind", f"{host}:{port}",
        # More than one process needs sticky sessions for Socket.IO's long-polling transport.
        "--workers", os.environ.get("EYE_WEB_PROCESSES", "1"), "--threads", os.environ.get("EYE_WEB_THREADS", "64"),
        "--log-level", os.environ.get("EYE_LOG_LEVEL", "warning").lower(), "app:create_app()",
    ])
    children = [web, worker]

    def stop(*_):
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        raise SystemExit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    url = f"http://{host}:{port}"
    wait_until_up(url, web)
    print(f"EYE_URL={url}", flush=True)
    for name, value in lines.items():
        print(f"{name}={value}", flush=True)
    print(f"# Swagger UI: {url}/   live mouse chart: {url}/dashboard   (Ctrl-C stops)", flush=True)
    while all(child.poll() is None for child in children):
        time.sleep(0.5)
    stop()


if __name__ == "__main__":
    main()
