"""Time partitions on the real PostgreSQL: made ahead of need, never by a worker, dropped once expired.

The rule (app/maintenance/partitions.py): the current window and EYE_PARTITIONS_AHEAD after it have
partitions; a row whose window has none lands in the table's DEFAULT partition; ensure() makes the
missing windows (moving their DEFAULT rows in), prune() drops what is older than the retention.
Time passing is simulated with the `now=` arguments, never by sleeping.

Settings are given to each app through the environment while it is made: create_app's overrides
replace the typed settings (timedelta, int) by the raw strings, see the test
test_typed_settings_given_to_create_app_are_read_as_from_the_environment.
"""

import random
import re
import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pg_partsmith.sync import PostgresAdvisoryLockManager
from sqlalchemy import text

import tasks.maintenance  # noqa: F401  (registers eye.maintain_partitions with every Celery app)
from app import create_app
from app.extensions import db
from app.identity import keys
from app.maintenance import partitions
from app.maintenance.windows import epoch_ms, next_window, window_name, window_start, window_starts
from app.messages import build_message, build_part, rejection_record
from app.storage.message import store_message
from tests.fixtures.apps import environment, make_key_factory, migrated_app, wait_for

TIME_TABLES = ("events", "rejections", "mouse_metrics", "arrival_counts", "arrival_counts_hourly")
ALL_TABLES = (*TIME_TABLES, "mouse_points")
PAGE = {"host": "example.com", "path": "/"}


# --- Helpers ----------------------------------------------------------------------------------


def interval_of(app, table: str) -> str:
    return "day" if table == "mouse_points" else app.config["EYE_PARTITION_INTERVAL"]


def expected_names(app, table: str, now: datetime) -> set[str]:
    """The partitions the rule wants for `now`: its window and EYE_PARTITIONS_AHEAD after it."""
    interval = interval_of(app, table)
    starts = window_starts(interval, now, app.config["EYE_PARTITIONS_AHEAD"] + 1)
    return {window_name(table, interval, start) for start in starts}


def children(app, table: str) -> dict[str, tuple]:
    """Each partition of `table` (DEFAULT included, as None) with its (lower, upper) bounds."""
    with app.app_context():
        rows = db.session.execute(text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = CAST(:table AS regclass)"
        ), {"table": table}).all()
    return {name: parse_bounds(bounds) for name, bounds in rows}


def parse_bounds(bounds: str) -> tuple | None:
    if bounds == "DEFAULT":
        return None
    low, high = re.fullmatch(r"FOR VALUES FROM \('?([^')]+)'?\) TO \('?([^')]+)'?\)", bounds).groups()
    if re.fullmatch(r"-?[\d.]+", low):  # mouse_points: epoch milliseconds
        return (datetime.fromtimestamp(float(low) / 1000, UTC), datetime.fromtimestamp(float(high) / 1000, UTC))
    return (datetime.fromisoformat(low), datetime.fromisoformat(high))


def windowed(app, table: str) -> set[str]:
    """The names of the partitions of `table` that hold a window (the DEFAULT one left out)."""
    return {name for name, bounds in children(app, table).items() if bounds is not None}


def scalar(app, sql: str, **params):
    with app.app_context():
        return db.session.execute(text(sql), params).scalar()


def rows(app, sql: str, **params) -> list:
    with app.app_context():
        return [tuple(row) for row in db.session.execute(text(sql), params).all()]


def execute(app, sql: str, **params) -> None:
    with app.app_context():
        db.session.execute(text(sql), params)
        db.session.commit()


def ensure(app, now: datetime | None = None) -> dict[str, partitions.Outcome]:
    """partitions.ensure in an app context of its own (so no transaction of ours holds a lock)."""
    with app.app_context():
        return {outcome.table: outcome for outcome in partitions.ensure(now=now)}


def prune(app, now: datetime, dry_run: bool = False) -> tuple[dict[str, partitions.Outcome], int]:
    with app.app_context():
        outcomes, sessions = partitions.prune(dry_run=dry_run, now=now)
    return {outcome.table: outcome for outcome in outcomes}, sessions


def application(app, name: str | None = None) -> int:
    with app.app_context():
        return keys.get_or_create_application(name or f"partitions-{uuid.uuid4().hex[:8]}").id


def event(session_id, timestamp: datetime, event_id: str | None = None, category="page interaction",
          name="pageview", data: dict | None = None) -> dict:
    return {"event_id": event_id or str(uuid.uuid4()), "session_id": str(session_id), "category": category,
            "name": name, "data": PAGE if data is None else data, "timestamp": timestamp.isoformat()}


def mouse_move(session_id, points: list[tuple]) -> dict:
    return event(session_id, datetime.now(UTC), category="mouse", name="move",
                 data={"points": [{"t": t, "x": x, "y": y} for t, x, y in points]})


def store(app, application_id: int, events: list[dict], received_at: datetime | None = None,
          rejections: list[dict] | None = None):
    """Store one ingest message as the worker does (one transaction)."""
    message = build_message([build_part(application_id, received_at or datetime.now(UTC), events, rejections or [])])
    with app.app_context():
        return store_message(message)


def refusal(application_id: int, received_at: datetime) -> dict:
    return rejection_record(application_id, "invalid_payload", {"data": ["wrong"]}, {"x": 1}, received_at,
                            "page interaction", "pageview")


def placement(app, table: str, where: str = "true", **params) -> dict[str, int]:
    """How many rows of `table` (matching `where`) each partition holds."""
    return dict(rows(app, f"SELECT tableoid::regclass::text, count(*) FROM {table} WHERE {where} GROUP BY 1",
                     **params))


@pytest.fixture
def partition_app(make_embedded_app):
    """Factory: an app on a fresh database at the migrations' head, with the settings given (read from
    the environment while the app is made, as a deployment gives them)."""

    def make(**settings):
        with environment(**settings):
            return make_embedded_app()

    return make


@pytest.fixture
def fresh_migration(make_database, tmp_path):
    """Factory: an app on a new, empty database migrated now with the settings given (migration 0003
    reads EYE_PARTITION_INTERVAL and EYE_PARTITIONS_AHEAD from the environment)."""
    made = []

    def make(**settings):
        with environment(**settings):
            app = migrated_app(DATABASE_URL=make_database(), CELERY_BROKER_URL="", SOCKETIO_MESSAGE_QUEUE="",
                               EYE_DATA_DIR=str(tmp_path / "var"), SECRET_KEY="partitions")
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            db.engine.dispose()


# --- Partitions ahead -------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [{}, {"EYE_PARTITION_INTERVAL": "week", "EYE_PARTITIONS_AHEAD": "1"}],
                         ids=["month-3-ahead", "week-1-ahead"])
def test_the_migration_makes_the_current_window_and_those_ahead(fresh_migration, settings):
    now = datetime.now(UTC)
    app = fresh_migration(**settings)
    assert app.config["EYE_PARTITIONS_AHEAD"] == int(settings.get("EYE_PARTITIONS_AHEAD", 3))
    for table in ALL_TABLES:
        found = children(app, table)
        assert found.pop(f"{table}_default", "missing") is None, f"{table} has no DEFAULT partition"
        assert set(found) == expected_names(app, table, now), table
        for name, (low, high) in found.items():  # each one's bounds are its window
            assert window_name(table, interval_of(app, table), low) == name
            assert high == next_window(interval_of(app, table), low)

    later = now + timedelta(days=92)
    made = ensure(app, now=later)
    for table in ALL_TABLES:
        wanted = expected_names(app, table, later)
        assert set(made[table].created) == wanted - expected_names(app, table, now), table
        assert made[table].created, table
        assert windowed(app, table) == expected_names(app, table, now) | wanted, table

    before = {table: children(app, table) for table in ALL_TABLES}
    again = ensure(app, now=later)
    assert all(outcome.created == [] for outcome in again.values()), again
    assert {table: children(app, table) for table in ALL_TABLES} == before


# --- The DEFAULT partition --------------------------------------------------------------------


def test_events_without_a_partition_are_stored_in_default_and_move_when_their_window_is_made(partition_app):
    app = partition_app()
    application_id = application(app, "default-partition")
    read_key = make_key_factory(app)("read", application="default-partition")
    now = datetime.now(UTC)
    beyond = window_start("month", now + timedelta(days=200)) + timedelta(days=10, hours=3)  # no partition yet
    session = uuid.uuid4()
    sent = [event(session, datetime(1, 1, 1, tzinfo=UTC)), event(session, datetime(2021, 6, 1, 12, tzinfo=UTC)),
            event(session, beyond), event(session, now)]
    assert len(store(app, application_id, sent).new_events) == 4

    placed = placement(app, "events", "session_id = :s", s=session)
    assert placed == {"events_default": 3, window_name("events", "month", now): 1}

    def listed():
        response = app.test_client().get("/api/v1/events", query_string={"session_id": str(session)},
                                         headers={"X-API-Key": read_key})
        assert response.status_code == 200, response.json
        return [(item["event_id"], item["timestamp"], item) for item in response.json["items"]]

    before = listed()
    assert [event_id for event_id, _, _ in before] == [e["event_id"] for e in sent[:2] + [sent[3], sent[2]]]
    assert before[0][1] == "0001-01-01T00:00:00+00:00"
    assert datetime.fromisoformat(before[-1][1]) == beyond
    summary = app.test_client().get(f"/api/v1/sessions/{session}", headers={"X-API-Key": read_key}).json
    assert summary["event_count"] == 4 and summary["first_event_at"] == "0001-01-01T00:00:00+00:00"

    ids = rows(app, "SELECT event_id::text, id FROM events ORDER BY id")
    made = ensure(app, now=beyond)
    target = window_name("events", "month", beyond)
    assert target in made["events"].created
    assert placement(app, "events", "session_id = :s", s=session) == {
        "events_default": 2, target: 1, window_name("events", "month", now): 1}
    assert scalar(app, "SELECT count(*) FROM events_default WHERE timestamp >= :t", t=window_start("month", now)) == 0
    assert listed() == before  # nothing lost, nothing changed
    assert rows(app, "SELECT event_id::text, id FROM events ORDER BY id") == ids  # the arrival order kept


def test_hostile_timestamps_make_no_partition(partition_app):
    """Events from any time between year 1 and now are stored; partitions stay the windows near now."""
    app = partition_app()
    application_id = application(app)
    ensure(app)  # the windows of this very moment (the template database may be from before midnight)
    before = {table: children(app, table) for table in ALL_TABLES}
    rng = random.Random(20261130)
    now = datetime.now(UTC)
    first = datetime(1, 1, 1, tzinfo=UTC)
    span = (now - first).total_seconds()
    stamps = [first + timedelta(seconds=rng.uniform(0, span)) for _ in range(195)]
    stamps += [first, now - timedelta(microseconds=1), now, now + timedelta(seconds=app.config["EYE_MAX_CLOCK_SKEW"]),
               datetime(1970, 1, 1, tzinfo=UTC)]
    session = uuid.uuid4()
    sent = [event(session, stamp) for stamp in stamps]
    for start in range(0, len(sent), 50):
        store(app, application_id, sent[start:start + 50])

    made = ensure(app)
    assert all(outcome.created == [] for outcome in made.values()), made
    assert {table: children(app, table) for table in ALL_TABLES} == before
    stored = placement(app, "events", "session_id = :s", s=session)
    assert sum(stored.values()) == len(stamps)
    near = {name for name, bounds in before["events"].items() if bounds is not None}
    assert set(stored) <= near | {"events_default"}
    in_windows = sum(1 for stamp in stamps if any(low <= stamp < high for low, high in
                                                   (b for b in before["events"].values() if b)))
    assert stored.get("events_default", 0) == len(stamps) - in_windows
    assert len(near) == app.config["EYE_PARTITIONS_AHEAD"] + 1


# --- Concurrency ------------------------------------------------------------------------------


def test_concurrent_ensures_while_workers_store_lose_nothing(partition_app):
    """Two upkeep runs at once, while a worker keeps storing events of the windows they make."""
    app = partition_app()
    application_id = application(app)
    future = window_start("month", datetime.now(UTC) + timedelta(days=250)) + timedelta(days=12)
    wanted = expected_names(app, "events", future)
    rng = random.Random(7)
    errors, sent, outcomes = [], [], []
    stop = threading.Event()
    start = threading.Barrier(3)

    def storing():
        start.wait()
        rounds = 0
        while not stop.is_set() or rounds < 10:
            batch = [event(uuid.uuid4(), future + timedelta(days=rng.uniform(-45, 100))) for _ in range(5)]
            try:
                store(app, application_id, batch)
                sent.extend(e["event_id"] for e in batch)
            except Exception as exc:
                errors.append(f"store: {exc!r}")
            rounds += 1

    def ensuring():
        start.wait()
        try:
            outcomes.append(ensure(app, now=future))
        except Exception as exc:
            errors.append(f"ensure: {exc!r}")

    threads = [threading.Thread(target=storing)] + [threading.Thread(target=ensuring) for _ in range(2)]
    for thread in threads[1:] + threads[:1]:
        thread.start()
    for thread in threads[1:]:
        thread.join(timeout=120)
    stop.set()
    threads[0].join(timeout=120)

    assert errors == []
    stored = rows(app, "SELECT event_id::text FROM events WHERE application_id = :a", a=application_id)
    assert sorted(event_id for (event_id,) in stored) == sorted(sent)  # each once, none lost
    found = children(app, "events")
    for name in wanted:
        low, high = found[name]
        assert sum(1 for bounds in found.values() if bounds and bounds[0] < high and low < bounds[1]) == 1
    assert len(outcomes) == 2
    created = {name for outcome in outcomes for name in outcome["events"].created}
    assert wanted - expected_names(app, "events", datetime.now(UTC)) <= created <= set(found)
    # Nothing was left in DEFAULT for a window that has a partition now.
    for low, high in (bounds for bounds in found.values() if bounds):
        assert scalar(app, "SELECT count(*) FROM events_default WHERE timestamp >= :l AND timestamp < :h",
                      l=low, h=high) == 0


def test_an_ensure_while_another_run_holds_a_table_does_not_fail(partition_app):
    """Two runs at once are safe (tasks/maintenance.py): the one that finds a table locked by the other
    skips it and goes on, rather than failing the whole run."""
    app = partition_app()
    future = datetime.now(UTC) + timedelta(days=400)
    with app.app_context():
        table = partitions.partitioned_tables()[0]
        held = PostgresAdvisoryLockManager(db.engine).acquire_lock(partitions._partsmith_config(table).qualified_name)
        with held:
            try:
                made = {o.table: o for o in partitions.ensure(now=future)}
            except Exception as exc:
                pytest.fail(f"ensure() failed while another run held {table.table}: {exc!r}")
    for name in ALL_TABLES:
        if name != table.table:
            assert made[name].created, f"{name} was not looked after"
    assert ensure(app, now=future)[table.table].created  # the next run makes what was skipped


# --- Where rows land --------------------------------------------------------------------------


def test_a_late_event_lands_in_its_older_partition(partition_app):
    app = partition_app()
    application_id = application(app)
    now = datetime.now(UTC)
    late = now - timedelta(days=62)
    ensure(app, now=late)  # the windows from two months ago onwards exist now
    old_window = window_name("events", "month", late)
    assert old_window in windowed(app, "events")
    session = uuid.uuid4()
    store(app, application_id, [event(session, late), event(session, now)], rejections=[refusal(application_id, late)],
          received_at=late)
    assert placement(app, "events", "session_id = :s", s=session) == {
        old_window: 1, window_name("events", "month", now): 1}
    assert placement(app, "rejections", "application_id = :a", a=application_id) == {
        window_name("rejections", "month", late): 1}
    assert placement(app, "arrival_counts") == {window_name("arrival_counts", "month", late): 2}
    assert placement(app, "arrival_counts_hourly") == {window_name("arrival_counts_hourly", "month", late): 2}


# --- Retention --------------------------------------------------------------------------------


def snapshot(app) -> dict:
    """Everything retention may touch: each table's rows (by identity) and each table's partitions."""
    state = {
        "events": rows(app, "SELECT event_id::text, timestamp FROM events ORDER BY 1, 2"),
        "sessions": rows(app, "SELECT session_id::text, event_count FROM sessions ORDER BY 1"),
        "session_applications": rows(app, "SELECT session_id::text, application_id FROM session_applications ORDER BY 1, 2"),
        "mouse_totals": rows(app, "SELECT session_id::text, points FROM mouse_totals ORDER BY 1"),
        "mouse_metrics": rows(app, "SELECT id, session_id::text FROM mouse_metrics ORDER BY 1"),
        "mouse_points": rows(app, "SELECT session_id::text, t FROM mouse_points ORDER BY 1, 2"),
        "rejections": rows(app, "SELECT id::text FROM rejections ORDER BY 1"),
        "arrival_counts": rows(app, "SELECT minute, outcome, category, name, count FROM arrival_counts ORDER BY 1, 2, 3, 4"),
        "arrival_counts_hourly": rows(app, "SELECT hour, outcome, category, name, count FROM arrival_counts_hourly "
                                           "ORDER BY 1, 2, 3, 4"),
    }
    state["partitions"] = {table: sorted(children(app, table)) for table in ALL_TABLES}
    return state


def test_retention_drops_exactly_what_expired(partition_app):
    app = partition_app(EYE_RETENTION="30d", EYE_ERRORS_RETENTION="30d")
    assert app.config["EYE_RETENTION"] == timedelta(days=30)
    application_id = application(app)
    now = datetime.now(UTC)
    old, very_old, recent = now - timedelta(days=90), now - timedelta(days=200), now - timedelta(hours=1)
    future = now + timedelta(days=250)  # stored, in DEFAULT (no partition yet): not expired
    ensure(app, now=old)  # partitions from three months ago on; the very old rows land in DEFAULT

    gone_sessions = {"old": uuid.uuid4(), "very old": uuid.uuid4()}
    kept_sessions = {"recent": uuid.uuid4(), "mixed": uuid.uuid4(), "future": uuid.uuid4()}
    expired_events = [event(gone_sessions["old"], old), event(gone_sessions["old"], old + timedelta(minutes=1)),
                      event(kept_sessions["mixed"], old)]
    store(app, application_id, expired_events, received_at=old, rejections=[refusal(application_id, old)])
    very_old_events = [event(gone_sessions["very old"], very_old)]
    store(app, application_id, very_old_events, received_at=very_old,
          rejections=[refusal(application_id, very_old)])
    kept_events = [event(kept_sessions["recent"], recent), event(kept_sessions["mixed"], recent),
                   event(kept_sessions["future"], future)]
    kept_refusals = [refusal(application_id, recent), refusal(application_id, now)]
    store(app, application_id, kept_events, received_at=recent, rejections=kept_refusals)
    t = epoch_ms(now)
    moves = [mouse_move(kept_sessions["recent"], [(t - 2000, 0, 0), (t - 1000, 30, 40)]),
             mouse_move(kept_sessions["recent"], [(t, 60, 80)])]
    for move in moves:
        store(app, application_id, [move])
    # Mouse data of the expired sessions, as it was left when they were live.
    execute(app, "INSERT INTO mouse_totals (session_id, distance, peak_velocity, points, created_at, updated_at) "
                 "VALUES (:s, 10, 1, 2, :at, :at)", s=gone_sessions["old"], at=old)
    for when in (old, very_old):
        execute(app, "INSERT INTO mouse_metrics (session_id, event_id, t, distance, velocity, peak_velocity, points, "
                     "computed_at) VALUES (:s, gen_random_uuid(), :t, 5, 1, 1, 2, :at)",
                s=gone_sessions["old"], t=epoch_ms(when), at=when)
    # (Old points in their day's partition only: one in mouse_points_default stops the upkeep, see
    # test_a_mouse_point_in_default_does_not_stop_the_upkeep.)
    execute(app, "INSERT INTO mouse_points (session_id, tab, t, x, y) VALUES (:s, '', :t, 1, 2), (:s, '', :t + 1, 3, 4)",
            s=gone_sessions["old"], t=epoch_ms(old))

    before = snapshot(app)
    assert len(before["events"]) == 9 and len(before["sessions"]) == 5 and len(before["rejections"]) == 4
    assert len(before["mouse_metrics"]) == 4 and len(before["mouse_points"]) == 5

    # What should go: every partition whose window ended before its table's horizon...
    horizons = {"events": now - timedelta(days=30), "mouse_metrics": now - timedelta(days=30),
                "rejections": now - timedelta(days=30), "arrival_counts": now - timedelta(days=30),
                "arrival_counts_hourly": now - timedelta(days=30),
                "mouse_points": now - app.config["EYE_MOUSE_LATE_LIMIT"]}
    expired = {table: sorted(name for name, bounds in children(app, table).items()
                             if bounds is not None and bounds[1] <= horizons[table]) for table in ALL_TABLES}
    assert window_name("events", "month", old) in expired["events"]
    assert all(expired[table] for table in ALL_TABLES), expired
    # ...and the DEFAULT rows older than it: the very old event, refusal and metric, and the two
    # arrival counts of that minute and of its hour (stored, refused).
    default_expired = {"events": 1, "rejections": 1, "mouse_metrics": 1, "mouse_points": 0, "arrival_counts": 2,
                       "arrival_counts_hourly": 2}

    def check(outcomes, sessions):
        assert sessions == 2
        for table in ALL_TABLES:
            assert sorted(outcomes[table].dropped) == expired[table], table
            assert outcomes[table].default_rows_deleted == default_expired[table], table
            assert not [note for note in outcomes[table].notes if "lock" in note], outcomes[table].notes

    check(*prune(app, now, dry_run=True))
    assert snapshot(app) == before  # a dry run changes nothing

    check(*prune(app, now))
    after = snapshot(app)
    kept_ids = sorted(e["event_id"] for e in kept_events + moves)
    assert sorted(event_id for event_id, _ in after["events"]) == kept_ids
    assert {sid for sid, _ in after["sessions"]} == {str(s) for s in kept_sessions.values()}
    assert after["sessions"] == [row for row in before["sessions"] if row[0] in {str(s) for s in kept_sessions.values()}]
    assert after["session_applications"] == [(str(s), application_id) for s in sorted(kept_sessions.values(), key=str)]
    assert after["mouse_totals"] == [(str(kept_sessions["recent"]), 3)]
    assert after["mouse_metrics"] == [row for row in before["mouse_metrics"] if row[1] == str(kept_sessions["recent"])]
    assert len(after["mouse_metrics"]) == 2
    assert after["mouse_points"] == [row for row in before["mouse_points"] if row[0] == str(kept_sessions["recent"])]
    assert sorted(after["rejections"]) == sorted((r["id"],) for r in kept_refusals)
    assert after["arrival_counts"] == [row for row in before["arrival_counts"] if row[0] >= horizons["events"]]
    assert {row[1] for row in after["arrival_counts"]} == {"stored", "invalid_payload"}
    assert after["arrival_counts_hourly"] == [row for row in before["arrival_counts_hourly"]
                                              if row[0] + timedelta(hours=1) > horizons["events"]]
    assert {row[1] for row in after["arrival_counts_hourly"]} == {"stored", "invalid_payload"}
    for table in ALL_TABLES:
        assert after["partitions"][table] == sorted(set(before["partitions"][table]) - set(expired[table])), table

    outcomes, sessions = prune(app, now)  # nothing is left to expire
    assert sessions == 0
    assert all(o.dropped == [] and o.default_rows_deleted == 0 for o in outcomes.values()), outcomes
    assert snapshot(app) == after


def test_counts_expire_by_their_own_retention_and_an_hour_only_once_wholly_past(partition_app):
    """Stored counts go after EYE_RETENTION, refusals' after EYE_ERRORS_RETENTION, in minutes and in
    hours alike; an hour's row goes only once its whole hour is before the horizon (it still counts
    the minutes of it that are kept)."""
    app = partition_app(EYE_RETENTION="30d", EYE_ERRORS_RETENTION="7d")
    application_id = application(app)
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)  # the horizons fall at xx:30
    stored_horizon, refused_horizon = now - timedelta(days=30), now - timedelta(days=7)
    ensure(app, now=now - timedelta(days=70))  # the windows of those days are partitions: rows are in them
    hour = stored_horizon.replace(minute=0)  # the hour the stored horizon cuts in two
    for at in (hour - timedelta(minutes=50), hour + timedelta(minutes=10), hour + timedelta(minutes=45)):
        store(app, application_id, [event(uuid.uuid4(), at)], received_at=at)
    refused_hour = refused_horizon.replace(minute=0)
    for at in (refused_hour - timedelta(minutes=50), refused_hour + timedelta(minutes=10),
               refused_hour + timedelta(minutes=45)):
        store(app, application_id, [event(uuid.uuid4(), at)], received_at=at, rejections=[refusal(application_id, at)])

    def counts(table: str, column: str) -> list[tuple]:
        return rows(app, f"SELECT {column}, outcome, count FROM {table} ORDER BY 1, 2")

    prune(app, now)
    assert counts("arrival_counts", "minute") == [
        (hour + timedelta(minutes=45), "stored", 1),
        (refused_hour - timedelta(minutes=50), "stored", 1),
        (refused_hour + timedelta(minutes=10), "stored", 1),
        (refused_hour + timedelta(minutes=45), "invalid_payload", 1),
        (refused_hour + timedelta(minutes=45), "stored", 1)]
    assert counts("arrival_counts_hourly", "hour") == [
        (hour, "stored", 2),  # cut by the horizon: kept whole
        (refused_hour - timedelta(hours=1), "stored", 1),
        (refused_hour, "invalid_payload", 2),
        (refused_hour, "stored", 2)]

    # An hour later both cut hours are wholly past: they go (the stored counts of the refusals' hour stay).
    prune(app, now + timedelta(hours=1))
    assert counts("arrival_counts_hourly", "hour") == [
        (refused_hour - timedelta(hours=1), "stored", 1), (refused_hour, "stored", 2)]


def test_a_real_prune_after_a_dry_run_in_the_same_context_drops_what_it_reports(partition_app):
    """`prune(dry_run=True)` then `prune()` (as in `flask shell`): the real one drops what it says."""
    app = partition_app(EYE_RETENTION="30d")
    now = datetime.now(UTC)
    ensure(app, now=now - timedelta(days=70))
    expired = sorted(name for name, bounds in children(app, "events").items()
                     if bounds is not None and bounds[1] <= now - timedelta(days=30))
    assert expired
    with app.app_context():
        partitions.prune(dry_run=True, now=now)
        outcomes, _ = partitions.prune(now=now)
    events = next(outcome for outcome in outcomes if outcome.table == "events")
    assert sorted(events.dropped) == expired
    assert not set(expired) & windowed(app, "events"), events.notes


def test_a_mouse_point_in_default_does_not_stop_the_upkeep(partition_app):
    """A point whose day has no partition (a batch from before midnight processed after the upkeep
    moved on, or a client counting t from 0) lands in mouse_points_default; the upkeep still runs,
    and deletes it once it is older than EYE_MOUSE_LATE_LIMIT."""
    app = partition_app(EYE_RETENTION="30d")
    application_id = application(app)
    session = uuid.uuid4()
    yesterday = epoch_ms(window_start("day", datetime.now(UTC)) - timedelta(hours=1))
    store(app, application_id, [mouse_move(session, [(0, 0, 0), (1000, 3, 4)])])
    store(app, application_id, [mouse_move(session, [(yesterday, 0, 0)])])
    assert placement(app, "mouse_points", "session_id = :s", s=session) == {"mouse_points_default": 3}
    now = datetime.now(UTC)
    try:
        made = ensure(app, now=now + timedelta(days=5))
        outcomes, _ = prune(app, now)
    except Exception as exc:
        pytest.fail(f"the upkeep failed on a row of mouse_points_default: {exc!r}")
    assert made["mouse_points"].created
    assert outcomes["mouse_points"].default_rows_deleted == 2  # t = 0 and 1000: 1970
    assert rows(app, "SELECT t FROM mouse_points WHERE session_id = :s", s=session) == [(float(yesterday),)]


# --- Identity ---------------------------------------------------------------------------------


def test_an_event_is_stored_once_whatever_the_redeliveries(partition_app):
    app = partition_app()
    application_id = application(app)
    session = uuid.uuid4()
    beyond = datetime.now(UTC) + timedelta(days=200)  # one of them in DEFAULT
    sent = [event(session, datetime.now(UTC) - timedelta(seconds=i)) for i in range(5)] + [event(session, beyond)]
    received = datetime.now(UTC)
    assert len(store(app, application_id, sent, received_at=received).new_events) == 6
    assert store(app, application_id, sent, received_at=received).new_events == []

    # The same message by two workers at once.
    concurrent = [event(session, datetime.now(UTC) - timedelta(minutes=1, seconds=i)) for i in range(20)]
    barrier, results, errors = threading.Barrier(2), [], []

    def deliver():
        barrier.wait()
        try:
            results.append(len(store(app, application_id, concurrent, received_at=received).new_events))
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and sorted(results) == [0, 20]

    # A redelivery after its window got a partition (its row moved out of DEFAULT) is still a retry.
    ensure(app, now=beyond)
    assert store(app, application_id, sent, received_at=received).new_events == []

    # The same event_id with another timestamp is another event (contract §1); the same instant
    # written with another offset is the same one.
    again = {**sent[0], "timestamp": (datetime.fromisoformat(sent[0]["timestamp"]) + timedelta(seconds=1)).isoformat()}
    india = timezone(timedelta(hours=5, minutes=30))
    same_instant = {**sent[1], "timestamp": datetime.fromisoformat(sent[1]["timestamp"]).astimezone(india).isoformat()}
    assert same_instant["timestamp"] != sent[1]["timestamp"]
    assert [e["event_id"] for e in store(app, application_id, [again, same_instant]).new_events] == [again["event_id"]]

    counted = rows(app, "SELECT event_id::text, count(*) FROM events WHERE session_id = :s GROUP BY 1", s=session)
    assert sum(n for _, n in counted) == 27
    assert dict(counted)[sent[0]["event_id"]] == 2 and max(n for eid, n in counted if eid != sent[0]["event_id"]) == 1
    assert scalar(app, "SELECT event_count FROM sessions WHERE session_id = :s", s=session) == 27
    assert scalar(app, "SELECT sum(count) FROM arrival_counts WHERE outcome = 'stored'") == 27
    assert scalar(app, "SELECT sum(count) FROM arrival_counts_hourly WHERE outcome = 'stored'") == 27


# --- The operator's command line and the periodic task ----------------------------------------


def test_the_partitions_commands(partition_app):
    app = partition_app(EYE_RETENTION="30d")
    now = datetime.now(UTC)
    runner = app.test_cli_runner()

    listed = runner.invoke(args=["partitions", "list"])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    for table in ALL_TABLES:
        for name in [*windowed(app, table), f"{table}_default"]:
            line = next((line for line in lines if line.split()[1:2] == [name]), None)
            assert line is not None and line.split()[0] == table, (name, listed.output)
            assert ("DEFAULT" in line) == name.endswith("_default"), line
    assert len(lines) == sum(len(children(app, table)) for table in ALL_TABLES)

    interval = app.config["EYE_PARTITION_INTERVAL"]
    furthest = window_name("events", interval, window_starts(interval, now, 4)[-1])
    execute(app, f"DROP TABLE {furthest}")
    ensured = runner.invoke(args=["partitions", "ensure"])
    assert ensured.exit_code == 0, ensured.output
    assert f"created {furthest}" in ensured.output.splitlines()
    assert furthest in windowed(app, "events")
    assert "created" not in runner.invoke(args=["partitions", "ensure"]).output

    # An old window with an old session, two months back.
    ensure(app, now=now - timedelta(days=70))
    old = now - timedelta(days=65)
    store(app, application(app), [event(uuid.uuid4(), old)], received_at=old)
    expired = sorted(name for name, bounds in children(app, "events").items()
                     if bounds is not None and bounds[1] <= now - timedelta(days=30))
    assert expired
    before = snapshot(app)
    dry = runner.invoke(args=["partitions", "prune", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    lines = dry.output.splitlines()
    for name in expired:
        assert f"would drop {name}" in lines, dry.output
    assert "would drop 1 expired sessions" in lines
    assert snapshot(app) == before

    pruned = runner.invoke(args=["partitions", "prune"])
    assert pruned.exit_code == 0, pruned.output
    for name in expired:
        assert f"dropped {name}" in pruned.output.splitlines(), pruned.output
    assert "dropped 1 expired sessions" in pruned.output.splitlines()
    assert not set(expired) & windowed(app, "events")


def test_the_upkeep_task_returns_what_it_did(partition_app):
    """The task itself (run eagerly): what it made, dropped and removed."""
    app = partition_app(EYE_RETENTION="30d")
    interval = app.config["EYE_PARTITION_INTERVAL"]
    now = datetime.now(UTC)
    ensure(app)  # the windows of this very moment (the template database may be from before midnight)
    ensure(app, now=now - timedelta(days=70))
    old = now - timedelta(days=65)
    store(app, application(app), [event(uuid.uuid4(), old)], received_at=old)
    furthest = window_name("mouse_metrics", interval, window_starts(interval, now, 4)[-1])
    execute(app, f"DROP TABLE {furthest}")
    expired = sorted(name for name, bounds in children(app, "events").items()
                     if bounds is not None and bounds[1] <= now - timedelta(days=30))
    assert expired

    done = app.extensions["celery"].tasks["eye.maintain_partitions"].apply().get()
    assert done["created"] == [furthest]
    assert set(expired) <= set(done["dropped"])
    assert done["expired_sessions"] == 1
    assert furthest in windowed(app, "mouse_metrics") and not set(expired) & windowed(app, "events")


def test_the_upkeep_task_runs_in_a_worker(pg_app, pg_worker):
    """Sent by name to the real worker on RabbitMQ, it makes the window that went missing.

    (The shared database may hold points in mouse_points_default, which stop the upkeep before its
    prune: see test_a_mouse_point_in_default_does_not_stop_the_upkeep. So only what it makes before
    reaching mouse_points is looked at here; the eager test above checks the rest.)
    """
    interval = pg_app.config["EYE_PARTITION_INTERVAL"]
    with pg_app.app_context():
        partitions.ensure(tables=[t for t in partitions.partitioned_tables() if t.table != "mouse_points"])
    # The furthest window ahead (nothing is computed in the future: it is empty) goes missing.
    furthest = window_name("mouse_metrics", interval,
                           window_starts(interval, datetime.now(UTC), pg_app.config["EYE_PARTITIONS_AHEAD"] + 1)[-1])
    assert scalar(pg_app, f"SELECT count(*) FROM {furthest}") == 0
    execute(pg_app, f"DROP TABLE {furthest}")
    assert furthest not in windowed(pg_app, "mouse_metrics")

    pg_app.extensions["celery"].send_task("eye.maintain_partitions")
    wait_for(lambda: furthest in windowed(pg_app, "mouse_metrics"), timeout=60)
    low, high = children(pg_app, "mouse_metrics")[furthest]
    assert window_name("mouse_metrics", interval, low) == furthest and high == next_window(interval, low)


# --- Settings ---------------------------------------------------------------------------------


def test_typed_settings_given_to_create_app_are_read_as_from_the_environment(tmp_path):
    """create_app({"EYE_RETENTION": "30d"}) means what EYE_RETENTION=30d in the environment means
    (app/config.py: overrides are read "with the same names, and before anything is derived")."""
    settings = {"EYE_RETENTION": "30d", "EYE_ERRORS_RETENTION": "7d", "EYE_PARTITIONS_AHEAD": "2",
                "EYE_MOUSE_LATE_LIMIT": "3d"}
    common = {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "CELERY_BROKER_URL": "",
              "SOCKETIO_MESSAGE_QUEUE": "", "EYE_DATA_DIR": str(tmp_path), "SECRET_KEY": "s"}
    with environment(**settings):
        from_environment = create_app(common).config
    given = create_app({**common, **settings}).config
    for name in settings:
        assert given[name] == from_environment[name], name
    assert from_environment["EYE_RETENTION"] == timedelta(days=30)
