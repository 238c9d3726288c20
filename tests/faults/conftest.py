"""Servers of the fault tests' own, which they stop and start at will.

A throwaway RabbitMQ node and a throwaway PostgreSQL cluster, each on free ports of 127.0.0.1 with its
data and logs in a temporary folder, started once per run and removed at its end: stopping them
never disturbs the machine's main servers (5432, 5672) that other tests use. Without the Debian
binaries the tests are skipped with a reason (a failure with EYE_REQUIRE_SERVICES=1).
"""

import os
import pwd
import random
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import amqp
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from app.extensions import db
from tests.fixtures.apps import make_key_factory, migrated_app
from tests.fixtures.processes import ServiceProcess, free_port
from tests.fixtures.services import services_required

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
EPMD = shutil.which("epmd") or "/usr/bin/epmd"

SUMMARIES = pytest.StashKey[list[str]]()


def need(available: bool, what: str) -> None:
    """Skip with a reason (or fail, when the run requires services) if something the tests need is missing."""
    if available:
        return
    if services_required():
        pytest.fail(f"the fault tests need {what} (EYE_REQUIRE_SERVICES=1 makes that a failure)")
    pytest.skip(f"the fault tests need {what}; set EYE_REQUIRE_SERVICES=1 to fail instead")


def need_binaries(name: str, paths: list[Path | str]) -> None:
    missing = [str(path) for path in paths if not os.access(path, os.X_OK)]
    need(not missing, f"the Debian {name} binaries (missing: {', '.join(missing)})")


_PORTS_GIVEN: set[int] = set()


def server_port() -> int:
    """A free port of 127.0.0.1 below the kernel's ephemeral range.

    Our servers keep their port across a stop and a start; an ephemeral port could be taken by some
    outgoing connection on this busy machine while the server is down, and then it could not return.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(min(20000, low - 1000), low)
        if port in _PORTS_GIVEN:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _PORTS_GIVEN.add(port)
        return port
    return free_port()


def _wait_gone(process: subprocess.Popen, timeout: float) -> bool:
    try:
        process.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def node_environment(node: "ThrowawayRabbitMQ", home: Path, config: str = "") -> dict:
    """Write a node's own files in `node.base` and return the environment that points RabbitMQ at them.

    Not /etc/rabbitmq's files: they name the main node, its port and its plugins. `home` holds the
    Erlang cookie (a cluster's nodes share one); `config` adds lines to rabbitmq.conf.
    """
    base = node.base
    (base / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{node.port}\n{config}")
    (base / "rabbitmq-env.conf").write_text("")
    (base / "enabled_plugins").write_text("[].\n")  # no management plugin, so no port 15672
    return {
        **os.environ,
        "HOME": str(home),
        "RABBITMQ_NODENAME": node.name,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(node.port),
        "RABBITMQ_DIST_PORT": str(node.dist_port),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_PID_FILE": str(node.pid_file),
        "RABBITMQ_PLUGINS_EXPAND_DIR": str(base / "plugins-expand"),
        "ERL_EPMD_PORT": str(node.epmd_port),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        # Erlang distribution (the node's and the CLI's) on the loopback interface only.
        "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }


class ThrowawayRabbitMQ:
    """A RabbitMQ node of our own: its own name, ports, epmd, Erlang cookie, config, data and logs.

    It gets its own epmd (on a free port) and its own HOME (so its own cookie): the machine's node,
    its epmd and ~/.erlang.cookie are never touched, and nothing of ours outlives close().
    """

    def __init__(self, base: Path):
        self.base = base
        self.name = f"eye_fault_{uuid.uuid4().hex[:8]}@localhost"
        self.port, self.dist_port, self.epmd_port = server_port(), server_port(), server_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        self.pid_file = base / "node.pid"
        cookie = base / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)
        self.env = node_environment(self, home=base)
        self._epmd: subprocess.Popen | None = None
        self._node: subprocess.Popen | None = None
        self._node_log = None

    @property
    def running(self) -> bool:
        return self._node is not None and self._node.poll() is None

    def start(self, timeout: float = 60.0) -> float:
        """Boot the node; returns the moment (time.monotonic()) it accepted an AMQP connection."""
        if self.running:
            return time.monotonic()
        if self._epmd is None:
            self._epmd = subprocess.Popen([EPMD, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                                          env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True)
        self._node_log = open(self.base / "node.log", "ab")
        self._node = subprocess.Popen([str(RABBITMQ_BIN / "rabbitmq-server")], env=self.env, cwd=self.base,
                                      stdout=self._node_log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._node.poll() is not None:
                raise RuntimeError(f"RabbitMQ node {self.name} exited at start:\n{self.log()[-3000:]}")
            if self.accepts_connections():
                return time.monotonic()
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"RabbitMQ node {self.name} did not accept connections within {timeout} s")

    def accepts_connections(self) -> bool:
        """Does the node complete an AMQP handshake (not merely accept TCP)?"""
        connection = amqp.Connection(f"127.0.0.1:{self.port}", connect_timeout=1)
        try:
            connection.connect()
        except Exception:
            connection.collect()
            return False
        try:
            connection.close()
        except Exception:
            connection.collect()
        return True

    def stop(self) -> None:
        """Stop the node as an operator would (`rabbitmqctl stop`); returns once its process is gone."""
        if not self.running:
            return
        done = subprocess.run([str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.name, "stop", str(self.pid_file)],
                              env=self.env, cwd=self.base, capture_output=True, timeout=60)
        if done.returncode != 0 and self._node.poll() is None:
            os.killpg(self._node.pid, signal.SIGTERM)  # the Erlang VM stops gracefully on TERM too
        if not _wait_gone(self._node, 30):
            self.kill()
        self._close_log()

    def kill(self) -> None:
        """SIGKILL the node's process group (beam and its helpers), never anything else."""
        if self._node is not None and self._node.poll() is None:
            os.killpg(self._node.pid, signal.SIGKILL)
            self._node.wait(timeout=10)
        self._close_log()

    def _close_log(self) -> None:
        if self._node_log is not None:
            self._node_log.close()
            self._node_log = None

    def log(self) -> str:
        path = self.base / "node.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        """Stop the node and its epmd, and remove every file of theirs."""
        self.kill()
        if self._epmd is not None and self._epmd.poll() is None:
            self._epmd.kill()
            self._epmd.wait(timeout=10)
        shutil.rmtree(self.base, ignore_errors=True)


class ThrowawayPostgres:
    """A PostgreSQL cluster of our own: initdb in a temporary folder, trust auth, 127.0.0.1 only.

    PostgreSQL refuses to run as root, so as root its programs run as the `postgres` user (which
    then owns the folder); otherwise as the current user.
    """

    def __init__(self, base: Path):
        self.base = base
        self.data = base / "data"
        self.port = server_port()
        self.as_owner: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(base, owner.pw_uid, owner.pw_gid)
            self.as_owner = ["runuser", "-u", "postgres", "--"]

    def initdb(self) -> None:
        """Make the cluster (trust authentication: only this machine's tests reach 127.0.0.1:port)."""
        self._run([str(POSTGRES_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                   "--encoding=UTF8", "--no-sync", "--no-instructions"], timeout=120)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, args: list[str], timeout: float, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(self.as_owner + args, cwd=self.base, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                               f"{self.log()[-3000:]}")
        return done

    def _pg_ctl(self, *args: str, timeout: float = 90, check: bool = True) -> subprocess.CompletedProcess:
        return self._run([str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.data), *args], timeout=timeout, check=check)

    @property
    def running(self) -> bool:
        return self._pg_ctl("status", check=False).returncode == 0

    def start(self) -> float:
        """Start the cluster; returns the moment (time.monotonic()) it accepted connections."""
        # Its socket lives in our folder, not /var/run/postgresql, which belongs to the main server.
        options = f"-p {self.port} -k {shlex.quote(str(self.base))} -c listen_addresses=127.0.0.1"
        self._pg_ctl("-l", str(self.base / "postgres.log"), "-o", options, "-w", "-t", "60", "start")
        return time.monotonic()

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster (`fast`: roll back open transactions and disconnect everyone)."""
        self._pg_ctl("-m", mode, "-w", "-t", "60", "stop")

    def log(self) -> str:
        path = self.base / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        """Stop the cluster if it runs and remove its folder."""
        if (self.data / "postmaster.pid").exists():
            self._pg_ctl("-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def fault_broker():
    """A throwaway RabbitMQ node (started once per run) that the tests may stop and start."""
    need_binaries("RabbitMQ", [RABBITMQ_BIN / "rabbitmq-server", RABBITMQ_BIN / "rabbitmqctl", EPMD])
    node = ThrowawayRabbitMQ(Path(tempfile.mkdtemp(prefix="eye_fault_rabbitmq_")))
    try:
        node.start()
        yield node
    finally:
        node.close()


@pytest.fixture(scope="session")
def fault_postgres():
    """A throwaway PostgreSQL cluster (made and started once per run) that the tests may stop and start."""
    need_binaries("PostgreSQL", [POSTGRES_BIN / "initdb", POSTGRES_BIN / "pg_ctl", POSTGRES_BIN / "postgres"])
    if os.geteuid() == 0:
        need(shutil.which("runuser") is not None and _user_exists("postgres"),
             "runuser and a `postgres` user, to run PostgreSQL as non-root")
    # Not under pytest's tmp folder: that one is private to root and `postgres` could not enter it.
    cluster = ThrowawayPostgres(Path(tempfile.mkdtemp(prefix="eye_fault_postgres_")))
    try:
        cluster.initdb()
        cluster.start()
        yield cluster
    finally:
        cluster.close()


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture(scope="session")
def fault_app(fault_postgres, fault_broker):
    """The app on the throwaway servers, its schema built by the migrations (used to make keys)."""
    admin = create_engine(fault_postgres.url().replace("postgresql://", "postgresql+psycopg2://"),
                          isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text('CREATE DATABASE "eye_faults"'))
    admin.dispose()
    app = migrated_app(DATABASE_URL=fault_postgres.url("eye_faults"), CELERY_BROKER_URL=fault_broker.url,
                       SECRET_KEY=f"fault-secret-{uuid.uuid4().hex}")
    yield app
    with app.app_context():
        db.engine.dispose()


@dataclass
class FaultStack:
    """One test's view of the throwaway servers: their controls, an env for the service, a key."""

    broker: ThrowawayRabbitMQ
    postgres: ThrowawayPostgres
    env: dict
    api_key: str
    application: str
    database_url: str

    def engine(self) -> Engine:
        """An engine on the test database; unpooled, as no connection may outlive a server restart."""
        return create_engine(self.database_url.replace("postgresql://", "postgresql+psycopg2://"), poolclass=NullPool)

    def stored_counts(self, session_ids: list[str]) -> Counter:
        """How many rows each event_id has among the given sessions' stored events."""
        engine = self.engine()
        try:
            with engine.connect() as connection:
                rows = connection.execute(text(
                    "SELECT event_id::text, count(*) FROM events WHERE session_id = ANY(CAST(:s AS uuid[])) "
                    "GROUP BY event_id"), {"s": session_ids})
                return Counter({event_id: count for event_id, count in rows})
        finally:
            engine.dispose()

    def session_totals(self, session_ids: list[str]) -> int:
        """The sum of the sessions' event_count (what the workers added up, once per new event)."""
        engine = self.engine()
        try:
            with engine.connect() as connection:
                return connection.execute(text(
                    "SELECT coalesce(sum(event_count), 0) FROM sessions WHERE session_id = ANY(CAST(:s AS uuid[]))"),
                    {"s": session_ids}).scalar_one()
        finally:
            engine.dispose()

    def rejections(self) -> list[tuple[str, str]]:
        """(kind, raw) of every rejection recorded for this test's application."""
        engine = self.engine()
        try:
            with engine.connect() as connection:
                return [tuple(row) for row in connection.execute(text(
                    "SELECT r.kind, r.raw FROM rejections r JOIN applications a ON a.id = r.application_id "
                    "WHERE a.name = :name"), {"name": self.application})]
        finally:
            engine.dispose()

    def wait_until_stored(self, session_ids: list[str], event_ids: set[str], timeout: float,
                          hopeless=lambda: False) -> Counter:
        """Poll until every one of `event_ids` is stored, `timeout` passes or `hopeless()` says some never
        will be; returns the last counts."""
        deadline = time.monotonic() + timeout
        while True:
            stored = self.stored_counts(session_ids)
            if event_ids <= stored.keys() or time.monotonic() > deadline or hopeless():
                return stored
            time.sleep(0.25)

    def worker_env(self, name: str) -> dict:
        """The env for a worker whose database connections carry `name` (seen in pg_stat_activity)."""
        return {**self.env, "DATABASE_URL": f"{self.database_url}?application_name={name}"}


@pytest.fixture
def fault_stack(fault_app, fault_broker, fault_postgres) -> FaultStack:
    """Both throwaway servers running (a failed test may have left one stopped), a queue and a key of this test's own."""
    if not fault_postgres.running:
        fault_postgres.start()
    if not fault_broker.running:
        fault_broker.start()
    return new_stack(FaultStack, fault_broker, fault_postgres, fault_app, "eye_faults", "eye_fault")


def new_stack(stack_class, broker, postgres, app, database: str, prefix: str, **env) -> "FaultStack":
    """A test's view of the servers: a queue, Socket.IO channel, application and key of its own."""
    run = uuid.uuid4().hex[:8]
    env = {
        "DATABASE_URL": postgres.url(database),
        "CELERY_BROKER_URL": broker.url,
        "EYE_QUEUE": f"{prefix}_{run}",
        "EYE_SOCKETIO_CHANNEL": f"{prefix}_sio_{run}",
        "SECRET_KEY": app.config["SECRET_KEY"],
        **env,
    }
    application = f"{prefix}-{run}"
    key = make_key_factory(app)("ingest", application=application)
    return stack_class(broker, postgres, env, key, application, env["DATABASE_URL"])


# What Celery logs when a task raised something it does not retry: with acks_late it then
# acknowledges the message anyway (task_acks_on_failure_or_timeout), so that message's events are gone.
TASK_FAILED = "raised unexpected"


def wait_for_log(process: ServiceProcess, needle: str, timeout: float = 60.0) -> None:
    """Wait until `needle` shows in a service process's log (e.g. a worker's "ready.")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in process.log():
            return
        if process.process.poll() is not None:
            pytest.fail(f"process exited before logging {needle!r}:\n{process.log()[-3000:]}")
        time.sleep(0.1)
    pytest.fail(f"{needle!r} not logged within {timeout} s:\n{process.log()[-3000:]}")


def sleep_until(moment: float) -> None:
    """Sleep until time.monotonic() reaches `moment` (at once if it has)."""
    time.sleep(max(0.0, moment - time.monotonic()))





@pytest.fixture(scope="session")
def fault_summary(request):
    """Collects each scenario's one-line figures; they are printed now (with -s) and again at the end of the run."""
    lines = request.config.stash.setdefault(SUMMARIES, [])

    def report(line: str) -> None:
        print(f"\n{line}", flush=True)
        lines.append(line)

    return report


def pytest_terminal_summary(terminalreporter, config):
    lines = config.stash.get(SUMMARIES, [])
    if lines:
        terminalreporter.section("fault injection figures")
        for line in lines:
            terminalreporter.write_line(line)
