"""`make run` in a fresh copy: it prints its URL and key, takes an event and persists it, stops cleanly."""

import json
import os
import shutil
import signal
import sqlite3
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


@pytest.mark.slow
def test_make_run_serves_and_persists_on_the_embedded_default(fresh_copy, sample):
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "SOCKETIO_MESSAGE_QUEUE", "EYE_DATA_DIR")}
    # `-o`: never remake the install stamp here. The copy shares this checkout's .venv, and
    # reinstalling would point its editable install at the copy, under every other test's feet.
    process = subprocess.Popen(["make", "-o", ".venv/.installed", "run"], cwd=fresh_copy,
                               env={**env, "EYE_PORT": str(port)},
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               start_new_session=True)
    try:
        found = read_lines_until(process, {"EYE_URL", "EYE_API_KEY", "EYE_ADMIN_KEY"})
        assert found.get("EYE_URL") == f"http://127.0.0.1:{port}", found
        event = {**sample("pageview"), "session_id": str(uuid.uuid4())}
        request = urllib.request.Request(
            found["EYE_URL"] + "/api/v1/events", data=json.dumps(event).encode(), method="POST",
            headers={"X-API-Key": found["EYE_API_KEY"], "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 202
            event_id = json.load(response)["event_id"]

        database = fresh_copy / "var" / "eye.db"
        deadline = time.monotonic() + 20
        stored = []
        while time.monotonic() < deadline and not stored:
            with sqlite3.connect(database) as connection:
                stored = connection.execute("SELECT event_id FROM events").fetchall()
            time.sleep(0.2)
        assert [uuid.UUID(row[0]) for row in stored] == [uuid.UUID(event_id)]

        # The worker yields the CPU to the web process (EYE_WORKER_NICE, 10 by default).
        niceness = {name: {os.getpriority(os.PRIO_PROCESS, pid) for pid in pids}
                    for name, pids in processes_of_session(process.pid).items()}
        assert niceness.get("celery") == {10} and niceness.get("gunicorn") == {0}, niceness

        listing = urllib.request.Request(found["EYE_URL"] + "/api/v1/applications",
                                         headers={"X-API-Key": found["EYE_ADMIN_KEY"]})
        with urllib.request.urlopen(listing, timeout=5) as response:
            assert "demo" in [a["name"] for a in json.load(response)["items"]]
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)
    assert process.returncode in (0, 2, -signal.SIGINT)
