"""The hourly arrival rollup (arrival_counts_hourly, migration 0005) on the real PostgreSQL: built from
the minutes by the migration, kept in step with them by the workers' one statement (COUNT_ARRIVALS),
an hour's row always the sum of its minutes' rows (the hour of a minute: its UTC hour).

Its expiry with the minutes is tested with the other retention rules, in test_partitions.py.
"""

import random
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from app import create_app
from app.extensions import db
from app.identity import keys
from app.maintenance.windows import window_name, window_start, window_starts
from app.messages import build_message, build_part, rejection_record
from app.storage.arrivals import COUNT_ARRIVALS, arrival_parameters
from app.storage.message import store_message
from tests.fixtures.apps import wait_for

AHEAD = 3  # EYE_PARTITIONS_AHEAD's default
BACKFILL_DAYS = 400  # 0005 makes partitions for the windows of the last 400 days holding counts
HOUR = timedelta(hours=1)
TYPES = [("page interaction", "pageview"), ("custom", "thing"), ("mouse", "move"), ("", "")]
OUTCOMES = ["stored", "invalid_payload", "future_timestamp", "malformed_json"]


def hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def rows(app, sql: str, **params) -> list[tuple]:
    with app.app_context():
        return [tuple(row) for row in db.session.execute(text(sql), params).all()]


def run(app, sql: str, **params) -> None:
    with app.app_context():
        db.session.execute(text(sql), params)
        db.session.commit()


def hourly(app, where: str = "true", **params) -> dict:
    """arrival_counts_hourly as {(hour, outcome, category, name): count}."""
    return {(hour, outcome, category, name): count for hour, outcome, category, name, count in rows(
        app, f"SELECT hour, outcome, category, name, count FROM arrival_counts_hourly WHERE {where}", **params)}


def minutes_by_hour(app, where: str = "true", **params) -> dict:
    """arrival_counts summed per UTC hour, in Python: what arrival_counts_hourly must hold."""
    sums = Counter()
    for minute, outcome, category, name, count in rows(
            app, f"SELECT minute, outcome, category, name, count FROM arrival_counts WHERE {where}", **params):
        sums[(hour_of(minute), outcome, category, name)] += count
    return dict(sums)


def partitions_of(app, table: str) -> dict[str, str]:
    return dict(rows(app, "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                          "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = CAST(:t AS regclass)", t=table))


# --- Migration 0005 ---------------------------------------------------------------------------


@pytest.fixture
def at_0004(make_database, tmp_path):
    """An app on a fresh database migrated to revision 0004 only."""
    app = create_app({"DATABASE_URL": make_database(), "CELERY_BROKER_URL": "", "SOCKETIO_MESSAGE_QUEUE": "",
                      "EYE_DATA_DIR": str(tmp_path / "var"), "SECRET_KEY": "rollup", "TESTING": True})
    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory, revision="0004")
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def migrate(app, action, revision: str = "head") -> None:
    with app.app_context():
        action(directory=app.extensions["migrate"].directory, revision=revision)


def seed_minutes(app, now: datetime) -> list[tuple]:
    """arrival_counts as workers of 0004 left it: minutes over fifteen months (several in an hour,
    at its first and last minutes too), and a few long before (2021, year 1)."""
    rng = random.Random(5)
    minutes = []
    for _ in range(300):
        days = rng.choice([d for d in range(450) if abs(d - BACKFILL_DAYS) > 2])  # none near the 400-day line
        hour = hour_of(now) - timedelta(days=days, hours=rng.randrange(1, 24))
        for minute in {0, 59, *rng.sample(range(1, 59), rng.randrange(1, 6))}:
            minutes.append(hour + timedelta(minutes=minute))
    minutes += [datetime(2021, 3, 4, 10, 59, tzinfo=UTC), datetime(1, 1, 1, 0, 0, tzinfo=UTC),
                datetime(1, 1, 1, 0, 30, tzinfo=UTC)]
    seeded = [(minute, outcome, category, name, rng.randrange(1, 1000))
              for minute in minutes for outcome in rng.sample(OUTCOMES, 2)
              for category, name in rng.sample(TYPES, 2) if category or outcome != "stored"]
    with app.app_context():
        db.session.execute(text(
            "INSERT INTO arrival_counts (minute, outcome, category, name, count) "
            "VALUES (:minute, :outcome, :category, :name, :count) ON CONFLICT DO NOTHING"),
            [dict(zip(("minute", "outcome", "category", "name", "count"), row, strict=True)) for row in seeded])
        db.session.commit()
    return rows(app, "SELECT minute, outcome, category, name, count FROM arrival_counts ORDER BY 1, 2, 3, 4")


def check_backfilled(app, minutes: list[tuple], now: datetime) -> None:
    expected = Counter()
    for minute, outcome, category, name, count in minutes:
        expected[(hour_of(minute), outcome, category, name)] += count
    assert hourly(app) == dict(expected)
    assert len(expected) < len(minutes)  # hours did sum several minutes

    # Partitions: DEFAULT, the windows of the last 400 days holding counts, the current one and AHEAD after it.
    oldest = now - timedelta(days=BACKFILL_DAYS)
    starts = {window_start("month", minute) for minute, *_ in minutes if minute >= oldest}
    starts |= set(window_starts("month", now, AHEAD + 1))
    found = partitions_of(app, "arrival_counts_hourly")
    assert found.pop("arrival_counts_hourly_default") == "DEFAULT"
    assert set(found) == {window_name("arrival_counts_hourly", "month", start) for start in starts}
    assert len(found) >= 14
    # What no partition holds is in DEFAULT: the older hours, 2021 and year 1 among them.
    in_default = rows(app, "SELECT hour FROM arrival_counts_hourly_default")
    assert sorted(hour for (hour,) in in_default) == sorted(
        hour for hour, *_ in expected if window_name("arrival_counts_hourly", "month", window_start("month", hour))
        not in found)
    assert {datetime(1, 1, 1, tzinfo=UTC), datetime(2021, 3, 4, 10, tzinfo=UTC)} <= {hour for (hour,) in in_default}


def test_the_migration_backfills_the_hours_from_the_minutes_and_goes_back_down(at_0004):
    app = at_0004
    now = datetime.now(UTC)
    minutes = seed_minutes(app, now)
    assert len(minutes) > 1000

    migrate(app, upgrade)
    check_backfilled(app, minutes, now)
    assert rows(app, "SELECT minute, outcome, category, name, count FROM arrival_counts ORDER BY 1, 2, 3, 4") == minutes

    migrate(app, downgrade, "0004")
    assert rows(app, "SELECT to_regclass('arrival_counts_hourly') IS NULL, "
                     "to_regclass('arrival_counts_hourly_default') IS NULL") == [(True, True)]
    assert rows(app, "SELECT minute, outcome, category, name, count FROM arrival_counts ORDER BY 1, 2, 3, 4") == minutes

    migrate(app, upgrade)
    check_backfilled(app, minutes, now)


# --- The workers keep both --------------------------------------------------------------------


def test_the_real_worker_keeps_hours_in_step_with_minutes(pg_client, pg_app, pg_key):
    """Events and refusals sent through the API and stored by the worker on RabbitMQ."""
    application = f"rollup-{uuid.uuid4().hex[:8]}"
    key = pg_key("ingest", "read", application=application)
    category = application

    def item(name: str, **changes) -> dict:
        return {"event_id": str(uuid.uuid4()), "session_id": str(uuid.uuid4()), "category": category, "name": name,
                "data": {"host": "rollup.example.com", "path": "/"},
                "timestamp": datetime.now(UTC).isoformat(), **changes}

    sent = 0
    for batch in range(4):
        items = [item(f"type-{i % 3}") for i in range(10 + batch)] + [item("broken", session_id="not a uuid")]
        response = pg_client.post("/api/v1/events/batch", json={"events": items}, headers={"X-API-Key": key})
        assert response.status_code == 202, response.json
        assert response.json["accepted"] == len(items) - 1
        sent += len(items)

    def counted() -> int:
        return rows(pg_app, "SELECT coalesce(sum(count), 0) FROM arrival_counts WHERE category = :c", c=category)[0][0]

    wait_for(lambda: counted() == sent, timeout=30)
    by_hour = minutes_by_hour(pg_app, "category = :c", c=category)
    assert hourly(pg_app, "category = :c", c=category) == by_hour
    assert sum(by_hour.values()) == sent
    outcomes = Counter()
    for (_, outcome, _, _), count in by_hour.items():
        outcomes[outcome] += count
    assert outcomes["stored"] == sent - 4 and len(outcomes) == 2, outcomes  # and the 4 refusals, of one kind


@pytest.fixture
def rollup_app(make_embedded_app):
    return make_embedded_app()


def message(application_id: int, category: str, received_at: datetime, stored: int, refused: int) -> dict:
    events = [{"event_id": str(uuid.uuid4()), "session_id": str(uuid.uuid4()), "category": category,
               "name": f"type-{i % 2}", "data": {"host": "rollup.example.com"}, "timestamp": received_at.isoformat()}
              for i in range(stored)]
    refusals = [rejection_record(application_id, "invalid_payload", {"data": ["bad"]}, {"x": i}, received_at,
                                 category, "type-0") for i in range(refused)]
    return build_message([build_part(application_id, received_at, events, refusals)])


def test_hours_are_the_sums_of_their_minutes_whatever_the_redeliveries_and_concurrency(rollup_app):
    app = rollup_app
    category = f"rollup-{uuid.uuid4().hex[:8]}"
    with app.app_context():
        application_id = keys.get_or_create_application(category).id
    start = hour_of(datetime.now(UTC)) - timedelta(hours=5)
    # Arrivals at minutes across four hours, at their edges too (xx:00, xx:59).
    instants = [start + timedelta(minutes=m, seconds=s) for m in (0, 1, 59, 60, 61, 119, 150, 179, 180, 239)
                for s in (0, 30)]
    messages = [message(application_id, category, at, stored=1 + i % 3, refused=i % 2) for i, at in enumerate(instants)]
    expected = sum(len(m["parts"][0]["events"]) + len(m["parts"][0]["rejections"]) for m in messages)

    # Four workers at once, each storing every message (in its own order): each is counted once,
    # and no two deadlock on the counter rows they all lock (minutes, then hours, each sorted).
    errors, barrier = [], threading.Barrier(4)

    def work(seed: int) -> None:
        order = messages[:]
        random.Random(seed).shuffle(order)
        barrier.wait()
        for one in order:
            try:
                with app.app_context():
                    store_message(one)
            except Exception as exc:
                errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []

    by_hour = minutes_by_hour(app, "category = :c", c=category)
    assert hourly(app, "category = :c", c=category) == by_hour
    assert sum(by_hour.values()) == expected
    assert {hour for hour, *_ in by_hour} == {start + i * HOUR for i in range(4)}

    # A redelivery counts nothing, in minutes or hours.
    with app.app_context():
        for one in messages[:5]:
            store_message(one)
    assert hourly(app, "category = :c", c=category) == by_hour
    assert minutes_by_hour(app, "category = :c", c=category) == by_hour


def test_the_statement_takes_hours_in_utc_whatever_the_sessions_time_zone(rollup_app):
    """date_trunc('hour', minute, 'UTC'): in a +05:30 session an hour still starts at a UTC hour."""
    app = rollup_app
    category = f"rollup-{uuid.uuid4().hex[:8]}"
    at = hour_of(datetime.now(UTC)) - timedelta(hours=2)
    counts = [(at + timedelta(minutes=m), "stored", category, "thing", 1) for m in (0, 20, 40, 59, 60, 90)]
    url = app.config["SQLALCHEMY_DATABASE_URI"].replace("postgresql+psycopg2://", "postgresql://")
    connection = psycopg2.connect(url, options="-c timezone=Asia/Kolkata")
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(COUNT_ARRIVALS, arrival_parameters(counts))
    finally:
        connection.close()
    assert hourly(app, "category = :c", c=category) == {(at, "stored", category, "thing"): 4,
                                                        (at + HOUR, "stored", category, "thing"): 2}
