"""Resident memory of `make run`'s whole process tree, idle and over a steady load.

    python bench/memory.py --idle 30 --load-seconds 600 --rate 100
    python bench/memory.py --load-seconds 600 --rate 150 --every 30 \
        --database-url postgresql://postgres@127.0.0.1/eye_memory --broker-url amqp://guest:guest@127.0.0.1:5672//

Starts `python -m app.launcher` on the embedded default in a fresh data folder (or on the given,
existing, empty database and RabbitMQ, with a queue of its own), waits `--idle`
seconds and samples every process of the run (launcher, gunicorn, celery, the embedded PostgreSQL),
then sends a steady load with bench/ingest.py and samples again every `--every` seconds; prints RSS
and PSS per group (PSS counts a page shared by N processes as 1/N in each: PostgreSQL's shared
buffers would otherwise be counted once per connection) and writes JSON.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def group_of(process: psutil.Process, launcher_pid: int) -> str:
    if process.pid == launcher_pid:
        return "launcher"
    name = " ".join(process.cmdline()[:3])
    for group in ("gunicorn", "celery", "postgres"):
        if group in name or process.name() == group:
            return group
    return "other"


def run_processes(launcher: psutil.Process, data: Path) -> list[psutil.Process]:
    """The launcher, its descendants, and the embedded server's processes (started by pg_ctl, they
    are not the launcher's children)."""
    found = {launcher.pid: launcher}
    for child in launcher.children(recursive=True):
        found[child.pid] = child
    for process in psutil.process_iter(["cwd", "cmdline"]):
        try:
            if str(data) in (process.info["cwd"] or "") or str(data) in " ".join(process.info["cmdline"] or []):
                found[process.pid] = process
        except psutil.Error:
            continue
    return list(found.values())


def sample(launcher: psutil.Process, data: Path) -> dict:
    groups: dict[str, dict] = {}
    for process in run_processes(launcher, data):
        try:
            memory = process.memory_full_info()
            group = groups.setdefault(group_of(process, launcher.pid), {"processes": 0, "rss_mb": 0.0, "pss_mb": 0.0})
        except psutil.Error:
            continue
        group["processes"] += 1
        group["rss_mb"] += memory.rss / 2**20
        group["pss_mb"] += memory.pss / 2**20
    total = {"processes": sum(g["processes"] for g in groups.values()),
             "rss_mb": sum(g["rss_mb"] for g in groups.values()),
             "pss_mb": sum(g["pss_mb"] for g in groups.values())}
    return {"at": time.time(), "groups": groups, "total": total}


def show(label: str, snapshot: dict) -> None:
    parts = [f"{name} {g['processes']}p rss {g['rss_mb']:.0f} pss {g['pss_mb']:.0f}"
             for name, g in sorted(snapshot["groups"].items())]
    total = snapshot["total"]
    print(f"{label:>8}: total {total['processes']}p rss {total['rss_mb']:.0f} MB pss {total['pss_mb']:.0f} MB"
          f" | {' | '.join(parts)}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=float, default=30)
    parser.add_argument("--load-seconds", type=float, default=0)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--every", type=float, default=60)
    parser.add_argument("--json", dest="json_path")
    parser.add_argument("--database-url", help="an existing empty database (else the embedded default)")
    parser.add_argument("--broker-url", help="RabbitMQ (with --database-url)")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="eye_memory_"))
    data = folder / "var"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "SOCKETIO_MESSAGE_QUEUE")}
    env.update({"EYE_DATA_DIR": str(data), "EYE_PORT": str(port), "EYE_LOG_LEVEL": "WARNING"})
    counted = []
    if args.database_url:
        queue = f"eye.memory.{port}"
        env.update({"DATABASE_URL": args.database_url, "CELERY_BROKER_URL": args.broker_url, "EYE_QUEUE": queue,
                    "EYE_SOCKETIO_CHANNEL": f"{queue}.sio"})
        counted = ["--database-url", args.database_url]
    launcher = subprocess.Popen([sys.executable, "-m", "app.launcher"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                text=True, start_new_session=True)
    snapshots = []
    try:
        lines = {}
        while "EYE_API_KEY" not in lines:
            line = launcher.stdout.readline()
            if not line:
                raise SystemExit("make run exited before it printed its key")
            name, _, value = line.strip().partition("=")
            lines[name] = value
        time.sleep(args.idle)
        snapshots.append({"phase": "idle", **sample(psutil.Process(launcher.pid), data)})
        show("idle", snapshots[-1])
        if args.load_seconds:
            load = subprocess.Popen([sys.executable, "bench/ingest.py", "--url", lines["EYE_URL"], "--api-key",
                                     lines["EYE_API_KEY"], "--mode", "single", "--concurrency", "4", "--rate",
                                     str(args.rate), "--duration", str(args.load_seconds), "--drain-timeout", "120",
                                     *counted],
                                    cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            started = time.monotonic()
            while load.poll() is None:
                time.sleep(min(args.every, max(args.load_seconds - (time.monotonic() - started), 1)))
                if load.poll() is None:
                    snapshots.append({"phase": f"load {time.monotonic() - started:.0f} s",
                                      **sample(psutil.Process(launcher.pid), data)})
                    show(f"{time.monotonic() - started:.0f} s", snapshots[-1])
            print(f"load exit status {load.returncode} (1: the count check failed)", flush=True)
    finally:
        os.killpg(launcher.pid, signal.SIGINT)
        launcher.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
        if args.database_url:
            from broker_cleanup import delete_broker_entities  # bench/, beside this script

            # The run's queues and exchanges go with it.
            queues = [env["EYE_QUEUE"], f"{env['EYE_QUEUE']}.maintenance"]
            delete_broker_entities(args.broker_url, queues, [*queues, env["EYE_SOCKETIO_CHANNEL"]])
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(snapshots, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
