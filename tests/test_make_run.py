"""`make run` in a fresh copy: it prints its URL and key, takes an event and persists it, stops cleanly."""

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.fixtures.processes import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh_copy(tmp_path):
    """The working tree copied elsewhere, sharing this venv (a fresh install is what CI checks)."""
    copy = tmp_path / "eye"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", "var", ".git", "__pycache__",
                                                              ".pytest_cache", "*.egg-info"))
    os.symlink(ROOT / ".venv", copy / ".venv")
    return copy


def read_lines_until(process, names, timeout=90):
    found, deadline = {}, time.monotonic() + timeout
    while time.monotonic() < deadline and set(found) != set(names):
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        name, _, value = line.strip().partition("=")
        if name in names:
            found[name] = value
    return found


def processes_of_session(session: int) -> dict[str, list[int]]:
    """The celery and gunicorn processes started in one session, by program."""
    found: dict[str, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            if os.getsid(int(entry.name)) != session:
                continue
        except (OSError, ProcessLookupError):
            continue
        for program in ("celery", "gunicorn"):
            if any(part.endswith(program.encode()) for part in command[:2]):
                found.setdefault(program, []).append(int(entry.name))
    return found


def start_make_run(copy, port: int, **settings: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "SOCKETIO_MESSAGE_QUEUE", "EYE_DATA_DIR")}
    env.update(settings)
    # `-o`: never remake the install stamp here. The copy shares this checkout's .venv, and
    # reinstalling would point its editable install at the copy, under every other test's feet.
    return subprocess.Popen(["make", "-o", ".venv/.installed", "run"], cwd=copy,
                            env={**env, "EYE_PORT": str(port)},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)


def embedded_sql(data_folder: Path, statement: str) -> list[tuple]:
    """Run one statement on the embedded server's database (it must be running)."""
    import psycopg2

    from app.embedded_database import url_of_running

    url = url_of_running(data_folder / "postgres")
    assert url, f"no embedded PostgreSQL runs in {data_folder}"
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(statement)
        rows = cursor.fetchall() if cursor.description else []
    connection.close()
    return rows


def stored_event_ids(data_folder: Path) -> list[uuid.UUID]:
    """The event_ids in the embedded server's database (it must be running)."""
    return [uuid.UUID(str(row[0])) for row in embedded_sql(data_folder, "SELECT event_id FROM events")]


def events_partitions(data_folder: Path) -> set[str]:
    return {name for (name,) in embedded_sql(
        data_folder, "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                     "WHERE i.inhparent = 'events'::regclass")}


def processes_using(folder: Path) -> list[str]:
    """Every process whose command line or working folder names `folder` (PostgreSQL's included)."""
    import psutil

    found = []
    for process in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        named = " ".join(process.info["cmdline"] or [])
        if str(folder) in named or str(folder) in (process.info["cwd"] or ""):
            found.append(f"{process.info['pid']} {named}")
    return found


def stop_make_run(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=30)
    assert process.returncode in (0, 2, -signal.SIGINT)


def post_event(url: str, key: str, event: dict) -> str:
    request = urllib.request.Request(
        url + "/api/v1/events", data=json.dumps(event).encode(), method="POST",
        headers={"X-API-Key": key, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 202
        return json.load(response)["event_id"]


@pytest.mark.slow
def test_make_run_serves_and_persists_on_the_embedded_default(fresh_copy, sample):
    """make run on a real PostgreSQL from the wheel: it stores, runs the partition upkeep on beat's
    schedule, stops with nothing left behind, and a second make run on the same data starts cleanly
    with the event still there."""
    port = free_port()
    data = fresh_copy / "var"
    process = start_make_run(fresh_copy, port, EYE_MAINTENANCE_SECONDS="1")
    try:
        found = read_lines_until(process, {"EYE_URL", "EYE_API_KEY", "EYE_ADMIN_KEY"})
        assert found.get("EYE_URL") == f"http://127.0.0.1:{port}", found
        event_id = post_event(found["EYE_URL"], found["EYE_API_KEY"],
                              {**sample("pageview"), "session_id": str(uuid.uuid4())})

        deadline = time.monotonic() + 20
        stored = []
        while time.monotonic() < deadline and not stored:
            stored = stored_event_ids(data)
            time.sleep(0.2)
        assert stored == [uuid.UUID(event_id)]

        # The worker yields the CPU to the web process (EYE_WORKER_NICE, 10 by default).
        niceness = {name: {os.getpriority(os.PRIO_PROCESS, pid) for pid in pids}
                    for name, pids in processes_of_session(process.pid).items()}
        assert niceness.get("celery") == {10} and niceness.get("gunicorn") == {0}, niceness

        listing = urllib.request.Request(found["EYE_URL"] + "/api/v1/applications",
                                         headers={"X-API-Key": found["EYE_ADMIN_KEY"]})
        with urllib.request.urlopen(listing, timeout=5) as response:
            assert "demo" in [a["name"] for a in json.load(response)["items"]]

        # Beat runs inside the worker: a partition ahead that goes missing is made again.
        ahead = sorted(name for name in events_partitions(data) if name != "events_default")[-1]
        embedded_sql(data, f"DROP TABLE {ahead}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and ahead not in events_partitions(data):
            time.sleep(0.5)
        assert ahead in events_partitions(data)
    finally:
        stop_make_run(process)
    # Nothing of ours is left: no web, worker or database process names the data folder.
    assert processes_using(fresh_copy) == []

    again = start_make_run(fresh_copy, port)
    try:
        found = read_lines_until(again, {"EYE_URL", "EYE_API_KEY"})
        assert found.get("EYE_URL") == f"http://127.0.0.1:{port}", found
        assert stored_event_ids(data) == [uuid.UUID(event_id)]  # kept across the restart
    finally:
        stop_make_run(again)
    assert processes_using(fresh_copy) == []
