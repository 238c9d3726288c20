"""The CPU of a mouse move's own path, one piece at a time, in this one process.

    python bench/mouse_path.py                       # 2,000 batches, 1 and 4 per transaction
    python bench/mouse_path.py --per-transaction 1,2,4,8 --batches 4000

Two measurements, on a database and a queue of its own (created on --admin-url and --broker-url,
removed at the end):

- **transaction**: the worker's storage code (`store_message`) in a loop on one connection, for
  messages holding K `mouse / move` batches of 25 points (50 sessions, a session's batches 250 ms
  apart, as a live page sends them). Reports the CPU per batch of this process and of its
  PostgreSQL backend (read from /proc: the server must run on this machine, or it is null).
- **post**: `POST /api/v1/events` of one such batch with a dashboard token, through Flask's test
  client (no HTTP server; the publish to RabbitMQ is real). Reports this process's CPU per request,
  which includes the test client's own work (~15 %): compare commits, not absolute figures.

Run it from a commit's tree (`PYTHONPATH=<tree>/src`) to compare two, alternated.
"""

import argparse
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from mouse import mouse_move_event  # bench/mouse.py, beside this script: the batch its pages send

# After PYTHONPATH: `PYTHONPATH=<tree>/src` measures that tree's code (the report names it).
sys.path.append(str(Path(__file__).resolve().parents[1] / "src"))

SESSIONS = 50


def batch_event(session_id: str, index: int, start_ms: float) -> dict:
    """A page's index-th batch, ending 250 ms after its previous one (bench/mouse.py's pages' batch)."""
    return mouse_move_event(session_id, start_ms + index * 250, float(index))


def process_cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_transactions(app, batches: int, per_transaction: int) -> dict:
    from sqlalchemy import text

    from app.extensions import db
    from app.identity import keys
    from app.messages import build_message, build_part
    from app.storage.message import store_message

    with app.app_context():
        application_id = keys.get_or_create_application("bench-mouse-path").id
        db.session.commit()
        backend = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        db.session.commit()
        sessions = [str(uuid.uuid4()) for _ in range(SESSIONS)]
        start_ms = time.time() * 1000 - 3_600_000  # an hour ago: never in the future, within any partition kept
        warmup = 100 * per_transaction
        events = [batch_event(sessions[i % SESSIONS], i // SESSIONS, start_ms) for i in range(warmup + batches)]
        messages = [build_message([build_part(application_id, datetime.now(UTC), [event], [])
                                   for event in events[i:i + per_transaction]])
                    for i in range(0, len(events), per_transaction)]
        for message in messages[:100]:
            store_message(message)
        backend_before, own_before = process_cpu(backend), time.process_time()
        started = time.perf_counter()
        for message in messages[100:]:
            store_message(message)
        elapsed = time.perf_counter() - started
        backend_after, own_after = process_cpu(backend), time.process_time()
    counted = len(messages[100:]) * per_transaction
    return {
        "per_transaction": per_transaction, "batches": counted,
        "python_ms_per_batch": round((own_after - own_before) / counted * 1000, 3),
        "postgres_ms_per_batch": (round((backend_after - backend_before) / counted * 1000, 3)
                                  if backend_before is not None and backend_after is not None else None),
        "wall_ms_per_batch": round(elapsed / counted * 1000, 3),
    }


def measure_posts(app, requests: int) -> dict:
    client = app.test_client()
    grant = client.post("/dashboard/token").get_json()
    headers = {"Authorization": f"Bearer {grant['token']}"}
    start_ms = time.time() * 1000 - (100 + requests) * 250 - 60_000  # the last batch ends a minute ago
    bodies = [json.dumps(batch_event(grant["session_id"], i, start_ms)) for i in range(100 + requests)]
    for body in bodies[:100]:
        response = client.post("/api/v1/events", data=body, headers=headers, content_type="application/json")
        if response.status_code != 202:
            raise SystemExit(f"POST answered {response.status_code}: {response.get_data(as_text=True)[:300]}")
    own_before, started = time.process_time(), time.perf_counter()
    statuses: dict[int, int] = {}
    for body in bodies[100:]:
        status = client.post("/api/v1/events", data=body, headers=headers, content_type="application/json").status_code
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "requests": requests, "statuses": statuses,
        "python_ms_per_request": round((time.process_time() - own_before) / requests * 1000, 3),
        "wall_ms_per_request": round((time.perf_counter() - started) / requests * 1000, 3),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--broker-url", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--batches", type=int, default=2000, help="batches stored per measurement")
    parser.add_argument("--per-transaction", default="1,4", help="batches per transaction, comma-separated")
    parser.add_argument("--posts", type=int, default=2000, help="POSTs timed (0: skip)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    from broker_cleanup import delete_broker_entities  # bench/, beside this script
    from flask_migrate import upgrade
    from sqlalchemy import create_engine, text

    name = f"eye_bench_mouse_path_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.admin_url.replace("postgresql://", "postgresql+psycopg2://", 1),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    os.environ.update({"DATABASE_URL": f"{args.admin_url.rsplit('/', 1)[0]}/{name}",
                       "CELERY_BROKER_URL": args.broker_url, "EYE_QUEUE": name,
                       "EYE_SOCKETIO_CHANNEL": f"{name}-sio", "EYE_LOG_LEVEL": "WARNING"})
    os.environ.setdefault("SECRET_KEY", "bench-secret")
    try:
        from app import create_app

        app = create_app()
        with app.app_context():
            upgrade(directory=app.extensions["migrate"].directory)
        import app as app_package

        report = {"code": str(Path(app_package.__file__).parent),
                  "transaction": [measure_transactions(app, args.batches, int(k)) for k in args.per_transaction.split(",")]}
        if args.posts:
            report["post"] = measure_posts(app, args.posts)
        with app.app_context():
            from app.extensions import db

            db.engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        delete_broker_entities(args.broker_url, [name, f"{name}.maintenance", f"{name}.readiness"],
                               [name, f"{name}.maintenance", f"{name}-sio"])
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
