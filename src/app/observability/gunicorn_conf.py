"""gunicorn settings for The Eye's web process: `gunicorn -c python:app.observability.gunicorn_conf …`."""

import os
import signal
import threading

from app.config import log_level
from app.observability.lingering_close import LingeringClose
from app.observability.logs import configure_logging

# Our request log (one JSON line per request) replaces gunicorn's access log.
accesslog = None
worker_class = "gthread"
# gunicorn's C parser (gunicorn_h1c, requirements-native.txt) when it is installed, else its Python
# one: measured on single-event POSTs, the C parser took 8-10 % off the web process's CPU per request
# (docs/benchmarks.md). None of gunicorn's settings that only the Python parser supports is set here.
http_parser = "auto"
# A stopping worker gives the requests in flight this long (gunicorn's default is 30 s), then its
# master kills it. Ours answer within seconds, and the Socket.IO connections, which last as long as
# their clients, are closed as the stop begins (_stop_promptly): only a stuck request waits this
# long, and a stop stays within what `make run`'s Ctrl-C (app/launcher.py) and `docker stop` (10 s)
# allow.
graceful_timeout = 5
# Each web process tells its master it is alive by touching a temporary file on every turn of its
# loop, about once per request. In /tmp on a disk that is a journalled inode update, where py-spy
# found a busy web process in 16 % of its samples (waiting, mostly: the CPU per request did not
# move measurably); gunicorn's documentation advises a memory file system for it.
if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
    worker_tmp_dir = "/dev/shm"


def post_worker_init(worker):
    configure_logging(log_level())
    # Here, not in create_app: it works on gunicorn's own request and socket objects, and an early
    # refusal of a large body must be answered, not reset, whichever app gunicorn serves.
    worker.wsgi = LingeringClose(worker.wsgi)
    _stop_promptly(worker)
    from app.dashboard.live import listen_for_worker_metrics

    listen_for_worker_metrics()


def worker_exit(server, worker):
    # A quick stop (SIGINT, SIGQUIT) leaves the worker's loop at once; the interpreter then joins the
    # thread pool's threads as it exits, and one serving a Socket.IO client would never return.
    if worker.booted:  # else the app never loaded: no connection to close
        from app.dashboard.live import close_connections

        close_connections()


def _stop_promptly(worker):
    """Let the stop signals stop the worker at once, whatever its clients do.

    SIGTERM: gthread stops accepting and waits for the connections in flight, and a WebSocket or a
    long poll stays in flight as long as its client: they are closed as the stop begins, on the
    worker's own loop (not in the signal handler, which may have interrupted anything).

    SIGINT and SIGQUIT: a terminal's Ctrl-C reaches the worker with its master's SIGQUIT right
    behind. gthread's handler, entered again while the first call holds its thread pool's shutdown
    lock, would wait for that lock forever, and the worker would outlive its master.
    """
    from app.dashboard.live import close_connections

    graceful, quick = worker.handle_exit, worker.handle_quit
    quitting = threading.Lock()

    def handle_exit(sig, frame):
        graceful(sig, frame)
        method_queue = getattr(worker, "method_queue", None)  # gthread's: runs calls on its loop
        if method_queue is not None:
            method_queue.defer(close_connections)

    def handle_quit(sig, frame):
        if quitting.acquire(blocking=False):  # the first stop signal only; it exits the process
            quick(sig, frame)

    signal.signal(signal.SIGTERM, handle_exit)
    signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn has it: a request's system calls go on
    signal.signal(signal.SIGINT, handle_quit)
    signal.signal(signal.SIGQUIT, handle_quit)
