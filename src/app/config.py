"""Every setting of The Eye, read from the environment in one place, with its default."""

import os
import re
from collections import ChainMap
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from kombu import Exchange, Queue

from app.broker import is_rabbitmq

# One default for the log level of every process (web, worker, launcher).
DEFAULT_LOG_LEVEL = "INFO"


def _bool(env: Mapping, name: str, default: bool = False) -> bool:
    value = env.get(name)
    if value is None or not str(value).strip():  # unset, or left empty (as compose passes an unset ${VAR:-})
        return default
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def log_level(env: Mapping = os.environ) -> str:
    """EYE_LOG_LEVEL, read here only."""
    return str(env.get("EYE_LOG_LEVEL") or DEFAULT_LOG_LEVEL).upper()


def data_dir(env: Mapping = os.environ) -> Path:
    """Where the embedded default keeps its PostgreSQL data folder and broker folders."""
    return Path(env.get("EYE_DATA_DIR") or Path.cwd() / "var").resolve()


def embedded_database_folder(env: Mapping = os.environ) -> Path:
    return data_dir(env) / "postgres"


def embedded_database_url(env: Mapping = os.environ) -> str:
    """The embedded server's database: the one `make run` runs (it starts the server and passes its
    URL on in DATABASE_URL); otherwise the socket it would have, which answers once it runs."""
    from app.embedded_database import url_of_running

    folder = embedded_database_folder(env)
    return url_of_running(folder) or f"postgresql://postgres@/eye?host={folder}"


def duration(text: str | None, name: str) -> timedelta | None:
    """`400d`, `12w`, `36h`, `90m` (minutes) or `30s`; empty or `forever` means no limit (None)."""
    if text is None or not str(text).strip() or str(text).strip().lower() == "forever":
        return None
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", str(text).lower())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{name}={text!r}: give a positive number of s, m, h, d or w (e.g. 400d), or 'forever'.")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


# How long data is kept, read here only (the API, the workers, the maintenance task and the
# migration all agree). See README "Partitions and retention".
PARTITION_INTERVALS = ("day", "week", "month")
DEFAULT_PARTITION_INTERVAL = "month"
DEFAULT_ERRORS_RETENTION = "90d"
DEFAULT_MOUSE_LATE_LIMIT = "2d"


def retention(env: Mapping = os.environ) -> timedelta | None:
    """EYE_RETENTION: events, sessions and mouse series; None keeps them forever (the default)."""
    return duration(env.get("EYE_RETENTION"), "EYE_RETENTION")


def errors_retention(env: Mapping = os.environ) -> timedelta | None:
    """EYE_ERRORS_RETENTION: the errors store (default 90 days; `forever` keeps it)."""
    return duration(env.get("EYE_ERRORS_RETENTION") or DEFAULT_ERRORS_RETENTION, "EYE_ERRORS_RETENTION")


def mouse_late_limit(env: Mapping = os.environ) -> timedelta:
    """EYE_MOUSE_LATE_LIMIT: how late a mouse batch may arrive and still be folded exactly."""
    return duration(env.get("EYE_MOUSE_LATE_LIMIT") or DEFAULT_MOUSE_LATE_LIMIT, "EYE_MOUSE_LATE_LIMIT")


def partition_interval(env: Mapping = os.environ) -> str:
    value = (env.get("EYE_PARTITION_INTERVAL") or DEFAULT_PARTITION_INTERVAL).strip().lower()
    if value not in PARTITION_INTERVALS:
        raise ValueError(f"EYE_PARTITION_INTERVAL={value!r}: one of {', '.join(PARTITION_INTERVALS)}.")
    return value


# The type of RabbitMQ queue the ingest and upkeep queues are declared as. Quorum queues are
# replicated by Raft: a publisher confirm then means a majority of the cluster's nodes wrote the
# message, so a 202 survives the loss of a node. `classic` keeps one copy on one node (RabbitMQ 4 no
# longer mirrors classic queues); it is kept for a broker older than 3.8. See README "A replicated broker".
QUEUE_TYPES = ("quorum", "classic")
DEFAULT_QUEUE_TYPE = "quorum"


def queue_type(env: Mapping = os.environ) -> str:
    """EYE_QUEUE_TYPE, read here only."""
    value = (env.get("EYE_QUEUE_TYPE") or DEFAULT_QUEUE_TYPE).strip().lower()
    if value not in QUEUE_TYPES:
        raise ValueError(f"EYE_QUEUE_TYPE={value!r}: one of {', '.join(QUEUE_TYPES)}.")
    return value


def queue_arguments(kind: str) -> dict:
    """The declaration arguments of a queue of that type (the same for every queue of ours)."""
    return {"x-queue-type": kind}


# The embedded broker: kombu's filesystem transport, patched to write atomically (see
# tasks/embedded_transport.py). Its folders come from EYE_DATA_DIR, so the URL stays short.
EMBEDDED_BROKER_URL = "eyefs://"


class Config:
    """Settings read when the app is created (never frozen at import).

    `overrides` (the dict given to create_app) are read before the environment, with the same
    names, and before anything is derived from them: create_app({"CELERY_BROKER_URL": …}) gives
    the same Celery and Socket.IO settings as that variable in the environment would.
    """

    def __init__(self, overrides: Mapping | None = None) -> None:
        env = ChainMap(dict(overrides or {}), os.environ)
        self.EYE_LOG_LEVEL = log_level(env)
        self.EYE_DATA_DIR = str(data_dir(env))
        # The embedded default's secret is kept in the data folder, made only when none is given.
        self.SECRET_KEY = env.get("SECRET_KEY") or env.get("EYE_SECRET_KEY") or _dev_secret(data_dir(env))
        self.SQLALCHEMY_DATABASE_URI = env.get("DATABASE_URL") or embedded_database_url(env)
        self.SQLALCHEMY_DATABASE_URI = _with_driver(self.SQLALCHEMY_DATABASE_URI)
        self.SQLALCHEMY_ENGINE_OPTIONS = _engine_options()
        self.SQLALCHEMY_TRACK_MODIFICATIONS = False

        self.CELERY_BROKER_URL = env.get("CELERY_BROKER_URL") or EMBEDDED_BROKER_URL
        self.SOCKETIO_MESSAGE_QUEUE = env.get("SOCKETIO_MESSAGE_QUEUE") or self.CELERY_BROKER_URL
        # Names of the queue and Socket.IO channel; tests give each run its own.
        self.EYE_QUEUE = env.get("EYE_QUEUE", "eye.events")
        self.EYE_MAINTENANCE_QUEUE = env.get("EYE_MAINTENANCE_QUEUE", f"{self.EYE_QUEUE}.maintenance")
        self.EYE_SOCKETIO_CHANNEL = env.get("EYE_SOCKETIO_CHANNEL", "eye-socketio")
        self.EYE_QUEUE_TYPE = queue_type(env)
        # A one-message queue beside the ingest queue, of its type, that /readyz publishes to: ready
        # means a message was confirmed there, i.e. (for quorum queues) a majority of nodes wrote it.
        self.EYE_READINESS_QUEUE = f"{self.EYE_QUEUE}.readiness"
        # How long a process keeps the broker's readiness answer (one probe a second at most).
        self.EYE_READINESS_CACHE_SECONDS = float(env.get("EYE_READINESS_CACHE_SECONDS", "1.0"))
        # Socket.IO transports the server accepts, in the order /dashboard tries them. A WebSocket is
        # one connection, held by one web process. Long-polling spreads a session over many requests,
        # and each must reach the process that holds the session: with several web processes on one
        # port (EYE_WEB_PROCESSES, i.e. gunicorn --workers N) nothing routes them so, and the other
        # process answers 400 "Invalid session". So polling is on by default for one web process
        # only; EYE_SOCKETIO_POLLING=1 turns it on behind a balancer with sticky sessions.
        polling = _bool(env, "EYE_SOCKETIO_POLLING", default=int(env.get("EYE_WEB_PROCESSES") or "1") <= 1)
        self.EYE_SOCKETIO_TRANSPORTS = ["websocket", "polling"] if polling else ["websocket"]
        # Seconds the API waits for the broker (connect + publisher confirm) before answering 503.
        self.EYE_PUBLISH_TIMEOUT = float(env.get("EYE_PUBLISH_TIMEOUT", "1.0"))

        # How many ingest messages a worker stores in one transaction at most (tasks/grouping.py).
        self.EYE_WORKER_GROUP_MESSAGES = int(env.get("EYE_WORKER_GROUP_MESSAGES", "100"))
        # How long it waits for more when the queue runs dry first: the storage lag it may add. 250 ms,
        # not 100: about a quarter less worker, PostgreSQL and RabbitMQ CPU per event at 100 events/s
        # (docs/benchmarks.md); the wait is a consumer's, it costs nothing while it lasts.
        self.EYE_WORKER_GROUP_WAIT_MS = float(env.get("EYE_WORKER_GROUP_WAIT_MS", "250"))
        # How long a group holding a mouse move waits instead (a live chart is waiting for its
        # metrics); never longer than EYE_WORKER_GROUP_WAIT_MS.
        self.EYE_WORKER_MOUSE_WAIT_MS = float(env.get("EYE_WORKER_MOUSE_WAIT_MS", "20"))
        self.EYE_MAX_CLOCK_SKEW = float(env.get("EYE_MAX_CLOCK_SKEW", "300"))
        # Partitions and retention (app/maintenance): checked here, so a typo stops the start.
        self.EYE_RETENTION = retention(env)
        self.EYE_ERRORS_RETENTION = errors_retention(env)
        self.EYE_MOUSE_LATE_LIMIT = mouse_late_limit(env)
        self.EYE_PARTITION_INTERVAL = partition_interval(env)
        # Partitions kept ready ahead of the current one, and how often the periodic task runs.
        self.EYE_PARTITIONS_AHEAD = int(env.get("EYE_PARTITIONS_AHEAD", "3"))
        self.EYE_MAINTENANCE_SECONDS = float(env.get("EYE_MAINTENANCE_SECONDS", "3600"))
        self.EYE_STRICT_EVENT_TYPES = _bool(env, "EYE_STRICT_EVENT_TYPES")
        self.EYE_RATE_LIMIT = env.get("EYE_RATE_LIMIT", "")
        # Flask-Limiter: counts live in each web process unless a shared storage is given
        # (e.g. redis://): with N processes behind a balancer, a key then gets up to N times the limit.
        self.RATELIMIT_DEFAULT = self.EYE_RATE_LIMIT or None
        # Dashboard tokens are handed out without a key: limited per client address.
        self.EYE_TOKEN_RATE_LIMIT = env.get("EYE_TOKEN_RATE_LIMIT", "30/minute")
        # How many proxies in front of the web processes set X-Forwarded-For/-Proto (the cluster
        # profile's HAProxy: 1). 0 believes no such header: a client could write any address in it.
        self.EYE_PROXY_HOPS = int(env.get("EYE_PROXY_HOPS") or "0")
        self.RATELIMIT_STORAGE_URI = env.get("EYE_RATE_LIMIT_STORAGE", "memory://")
        self.RATELIMIT_HEADERS_ENABLED = True
        # A shared counter store that is down lets requests through (logged): never a 500 for it.
        self.RATELIMIT_SWALLOW_ERRORS = True
        self.EYE_KEY_CACHE_SECONDS = float(env.get("EYE_KEY_CACHE_SECONDS", "2"))
        self.EYE_DASHBOARD_TOKEN_SECONDS = int(env.get("EYE_DASHBOARD_TOKEN_SECONDS", "3600"))
        self.MAX_CONTENT_LENGTH = 1024 * 1024  # contract: a body over 1 MiB is a 413

        self.API_TITLE = "The Eye"
        self.API_VERSION = "v1"
        self.OPENAPI_VERSION = "3.0.3"
        self.OPENAPI_URL_PREFIX = "/"
        self.OPENAPI_JSON_PATH = "openapi.json"
        self.OPENAPI_SWAGGER_UI_PATH = "/"
        # Swagger UI's assets are served by the app itself, so the docs work offline.
        self.OPENAPI_SWAGGER_UI_URL = "/static/vendor/swagger-ui/"

        self.CELERY = {
            "broker_url": self.CELERY_BROKER_URL,
            "task_ignore_result": True,
            "task_serializer": "orjson",  # JSON by orjson: see tasks/serialization.py
            "accept_content": ["orjson", "json"],
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 1,
            "task_default_queue": self.EYE_QUEUE,
            # The upkeep has a queue of its own: the ingest queue holds ingest messages only, which
            # the ingest task takes in groups (tasks/grouping.py).
            "task_routes": {"eye.maintain_partitions": {"queue": self.EYE_MAINTENANCE_QUEUE}},
            # Both consumed by every worker (start-celery.sh and make run give no --queues).
            "task_queues": [Queue(name, Exchange(name), routing_key=name,
                                  queue_arguments=queue_arguments(self.EYE_QUEUE_TYPE))
                            for name in (self.EYE_QUEUE, self.EYE_MAINTENANCE_QUEUE)],
            # With quorum queues Celery turns global QoS off by itself (worker_detect_quorum_queues,
            # on by default since 5.5): the prefetch stays per consumer, 1 per task slot.
            "worker_detect_quorum_queues": True,
            # Celery's consumer without its native delayed delivery step (see tasks/consumer.py).
            "worker_consumer": "tasks.consumer:IngestConsumer",
            # When the broker connection drops, tasks running go on (Celery's default until 6.0, which
            # will cancel them; it warns so at each reconnect): their messages come back to the queue
            # and a second run stores nothing twice, so finishing beats killing a pool process mid-commit.
            "worker_cancel_long_running_tasks_on_connection_loss": False,
            "broker_connection_timeout": self.EYE_PUBLISH_TIMEOUT,
            "broker_connection_retry_on_startup": True,
            "broker_transport_options": _broker_transport_options(self),
            "worker_hijack_root_logger": False,
        }


def _with_driver(url: str) -> str:
    """Plain postgres:// or postgresql:// URLs get the driver we ship (psycopg2)."""
    for plain in ("postgres://", "postgresql://"):
        if url.startswith(plain):
            return "postgresql+psycopg2://" + url[len(plain):]
    return url


def _engine_options() -> dict:
    # Every session speaks UTC, whatever the server's own time zone (an embedded server takes the
    # machine's): timestamps come back as +00:00, as the API shows them.
    return {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 10,
            "connect_args": {"options": "-c timezone=UTC"}}


def _broker_transport_options(config: Config) -> dict:
    if is_rabbitmq(config.CELERY_BROKER_URL):
        # Publisher confirms: a 202 means RabbitMQ holds the event.
        # (The confirm's own timeout is given per publish: see ingest/publishing.py.)
        return {"confirm_publish": True}
    return {}


def _dev_secret(folder: Path) -> str:
    """A stable per-data-dir secret for the embedded default, so tokens survive a restart."""
    path = folder / "secret_key"
    if path.exists():
        return path.read_text().strip()
    import secrets

    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    path.write_text(value)
    path.chmod(0o600)
    return value
