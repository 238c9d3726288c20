"""The embedded PostgreSQL: its data survives a restart, a stop leaves nothing running, a killed run does not block."""

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psutil
import psycopg2
import pytest

from app import embedded_database


def query(url: str, sql: str, *params):
    connection = psycopg2.connect(url)
    try:
        with connection, connection.cursor() as cursor:  # `with connection` commits
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else None
    finally:
        connection.close()


def alive(pid: int) -> bool:
    """A zombie counts as gone: whoever adopted the postmaster reaps it when it will."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def server_processes(server) -> list[int]:
    postmaster = psutil.Process(server.pid)
    return [postmaster.pid, *(child.pid for child in postmaster.children(recursive=True))]


@pytest.fixture
def start_server():
    """Factory: start the embedded server on one data folder (the same each time); all stopped at the end."""
    # Not under pytest's tmp folder: as root the server runs as another user, and every pytest session
    # that starts makes pytest-of-root private to root again, so a server there could lose its way in.
    base = Path(tempfile.mkdtemp(prefix="eye_test_postgres_"))
    started = []

    def start(**settings: str) -> embedded_database.EmbeddedPostgres:
        started.append(embedded_database.start(base / "data", settings=settings))
        return started[-1]

    yield start
    for server in started:
        server.stop()
    shutil.rmtree(base, ignore_errors=True)


def test_a_row_survives_a_restart_and_a_changed_setting_reaches_the_folder(start_server):
    server = start_server()
    assert query(server.url, "SELECT current_database(), current_setting('server_version_num')::int "
                             ">= 180000, current_setting('listen_addresses')") == [("eye", True, "")]
    query(server.url, "CREATE TABLE notes (body text)")
    query(server.url, "INSERT INTO notes VALUES (%s)", "kept")
    server.stop()

    again = start_server(work_mem="8MB")
    assert query(again.url, "SELECT body FROM notes") == [("kept",)]
    assert query(again.url, "SHOW work_mem") == [("8MB",)]
    assert query(again.url, "SHOW fsync") == [("on",)]


def test_stop_leaves_no_process_and_can_be_called_again(start_server):
    server = start_server()
    query(server.url, "SELECT 1")
    pids = server_processes(server)
    assert len(pids) > 1
    server.stop()
    assert not [pid for pid in pids if alive(pid)]
    assert not (server.data_folder / "postmaster.pid").exists()
    server.stop()


def test_a_killed_server_does_not_stop_the_next_start(start_server):
    server = start_server()
    query(server.url, "CREATE TABLE notes (body text)")
    query(server.url, "INSERT INTO notes VALUES ('committed before the kill')")
    pids = server_processes(server)
    os.kill(server.pid, signal.SIGKILL)  # a killed run: no shutdown, postmaster.pid stays
    assert (server.data_folder / "postmaster.pid").exists()

    again = start_server()
    assert again.pid != server.pid
    assert not [pid for pid in pids if alive(pid)]  # the old server's children are gone too
    assert query(again.url, "SELECT body FROM notes") == [("committed before the kill",)]


def test_a_stale_pid_file_naming_a_live_process_of_another_program(start_server):
    stopped = start_server()
    stopped.stop()
    folder = stopped.data_folder
    # After a reboot the PID in a stale postmaster.pid may belong to anything. PostgreSQL itself would
    # refuse to start while that process runs as its own user (someone else's it takes for stale).
    other = subprocess.Popen(["sleep", "60"], user=folder.stat().st_uid)
    try:
        (folder / "postmaster.pid").write_text(f"{other.pid}\n{folder}\n0\n5432\n{folder}\n\n\nready\n")
        server = start_server()
        assert query(server.url, "SELECT 1") == [(1,)]
        assert other.poll() is None  # and nobody killed it
    finally:
        other.kill()
        other.wait()
