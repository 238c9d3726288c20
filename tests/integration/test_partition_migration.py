"""Migration 0003 on a database filled at revision 0002: every row kept, partitions made for the windows
that hold data, the arrival rollup built from what is stored (and its hourly sums, by 0005), and back
down and up again.

The database is filled with SQL at 0002 (the application's code speaks the head's schema only):
events over fifteen months (and in 2021, and in year 1), their sessions, rejections, mouse points,
totals and metric series.
"""

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from app import create_app
from app.event_types import launch_registry
from app.extensions import db
from app.maintenance.windows import epoch_ms, window_name, window_start, window_starts
from app.messages import build_message, build_part
from app.storage.message import store_message
from tests.fixtures.apps import make_key_factory

EVENTS, SESSIONS, REJECTIONS, DAYS = 3000, 40, 600, 450  # fifteen months of days (some past the backfill)
BACKFILL_DAYS = 400  # migration 0003 makes partitions for the windows of the last 400 days holding rows
AHEAD = 3  # EYE_PARTITIONS_AHEAD's default
TYPES = [("page interaction", "pageview"), ("custom", "thing"), ("mouse", "move"), ("video", "play"),
         ("page interaction", "cta click")]
KINDS = ["invalid_payload", "future_timestamp", "unknown_event_type", "malformed_json"]


def event_time(now: datetime, i: int) -> datetime:
    """The i-th seeded event's timestamp: one a day back over fifteen months, never within an hour
    of a whole number of days from `now` (so no row sits on the 400-day line while the migration runs)."""
    return now - timedelta(days=i % DAYS, hours=1 + i % 5)


@pytest.fixture
def at_0002(make_database, tmp_path):
    """An app on a fresh database migrated to revision 0002 only."""
    app = create_app({"DATABASE_URL": make_database(), "CELERY_BROKER_URL": "", "SOCKETIO_MESSAGE_QUEUE": "",
                      "EYE_DATA_DIR": str(tmp_path / "var"), "SECRET_KEY": "migration", "TESTING": True})
    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory, revision="0002")
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def run(app, sql: str, **params) -> None:
    with app.app_context():
        db.session.execute(text(sql), params)
        db.session.commit()


def rows(app, sql: str, **params) -> list[tuple]:
    with app.app_context():
        return [tuple(row) for row in db.session.execute(text(sql), params).all()]


def migrate(app, action, revision: str = "head") -> None:
    with app.app_context():
        action(directory=app.extensions["migrate"].directory, revision=revision)


def seed(app, now: datetime) -> dict:
    """Fill the 0002 schema; returns the seeded ids and times the checks need."""
    run(app, "INSERT INTO applications (name) VALUES ('web'), ('mobile')")
    categories = "ARRAY[" + ", ".join(f"'{c}'" for c, _ in TYPES) + "]"
    names = "ARRAY[" + ", ".join(f"'{n}'" for _, n in TYPES) + "]"
    run(app, f"""
        INSERT INTO events (application_id, event_id, session_id, category, name, data, timestamp, received_at)
        SELECT 1 + i % 2, gen_random_uuid(), md5('migration-session-' || (i % :sessions))::uuid,
               ({categories})[1 + i % {len(TYPES)}], ({names})[1 + i % {len(TYPES)}],
               jsonb_build_object('i', i), ts, ts + (i % 90) * interval '1 second'
        FROM generate_series(0, :events - 1) AS i,
             LATERAL (SELECT :now - (i % :days) * interval '1 day' - (1 + i % 5) * interval '1 hour' AS ts) AS t
    """, events=EVENTS, sessions=SESSIONS, days=DAYS, now=now)
    # Two events from long before: year 1 and 2021, each in a session of its own, arrived yesterday.
    odd = {"year 1": (uuid.uuid4(), datetime(1, 1, 1, tzinfo=UTC)), "2021": (uuid.uuid4(), datetime(2021, 3, 4, tzinfo=UTC))}
    for session_id, stamp in odd.values():
        run(app, "INSERT INTO events (application_id, event_id, session_id, category, name, data, timestamp, received_at) "
                 "VALUES (1, gen_random_uuid(), :s, 'custom', 'thing', '{}', :ts, :received)",
            s=session_id, ts=stamp, received=now - timedelta(days=1))
    run(app, "INSERT INTO sessions (session_id, first_event_at, last_event_at, event_count) "
             "SELECT session_id, min(timestamp), max(timestamp), count(*) FROM events GROUP BY session_id")
    run(app, "INSERT INTO session_applications (session_id, application_id) "
             "SELECT DISTINCT session_id, application_id FROM events")
    run(app, f"""
        INSERT INTO rejections (id, received_at, application_id, kind, category, name, errors, raw)
        SELECT gen_random_uuid(), :now - (i % :days) * interval '1 day' - (1 + i % 5) * interval '1 hour',
               CASE WHEN i % 3 = 0 THEN NULL ELSE 1 + i % 2 END,
               (ARRAY['{"', '".join(KINDS)}'])[1 + i % {len(KINDS)}],
               CASE WHEN i % {len(KINDS)} = 3 THEN NULL ELSE ({categories})[1 + i % {len(TYPES)}] END,
               CASE WHEN i % {len(KINDS)} = 3 THEN NULL ELSE ({names})[1 + i % {len(TYPES)}] END,
               '{{"data": ["wrong"]}}', 'raw ' || i
        FROM generate_series(0, :n - 1) AS i
    """, n=REJECTIONS, days=DAYS, now=now)
    # Mouse data of four sessions: points on a few days (two of them older than the backfill, one
    # from a client counting from 0) and a metric series over ten months.
    mouse_sessions = [uuid.uuid4() for _ in range(4)]
    point_days = [now - timedelta(days=d, hours=2) for d in (2, 3, 30, 200, 500)] + [datetime.fromtimestamp(1, UTC)]
    for n, session_id in enumerate(mouse_sessions):
        for day in point_days:
            run(app, "INSERT INTO mouse_points (session_id, tab, t, x, y) "
                     "SELECT :s, 'tab', :t + k * 16.5, k, 2 * k FROM generate_series(0, 9) AS k",
                s=session_id, t=epoch_ms(day) + n)
        run(app, "INSERT INTO mouse_metrics (session_id, event_id, t, distance, velocity, peak_velocity, points, "
                 "computed_at) "
                 "SELECT :s, gen_random_uuid(), k * 1000.0, k * 10.5, k * 1.5, k * 2.0, k, "
                 "       :now - (300 - k * 30 - :n) * interval '1 day' "
                 "FROM generate_series(0, 9) AS k", s=session_id, n=n, now=now)
        run(app, "INSERT INTO mouse_totals (session_id, distance, peak_velocity, points, updated_at) "
                 "SELECT session_id, sum(distance), max(peak_velocity), sum(points), max(computed_at) "
                 "FROM mouse_metrics WHERE session_id = :s GROUP BY session_id", s=session_id)
    return {"odd": odd, "mouse_sessions": mouse_sessions, "point_days": point_days}


def contents(app) -> dict:
    """Every row of every table the migration copies, with its ids, in a stable order."""
    return {
        "events": rows(app, "SELECT id, application_id, event_id, session_id, category, name, data, timestamp, received_at "
                            "FROM events ORDER BY id"),
        "sessions": rows(app, "SELECT session_id, first_event_at, last_event_at, event_count FROM sessions ORDER BY 1"),
        "session_applications": rows(app, "SELECT session_id, application_id FROM session_applications ORDER BY 1, 2"),
        "rejections": rows(app, "SELECT id, received_at, application_id, kind, category, name, errors, raw "
                                "FROM rejections ORDER BY id"),
        "mouse_points": rows(app, "SELECT session_id, tab, t, x, y FROM mouse_points ORDER BY 1, 2, 3"),
        "mouse_totals": rows(app, "SELECT session_id, distance, peak_velocity, points, updated_at FROM mouse_totals "
                                  "ORDER BY 1"),
        "mouse_metrics": rows(app, "SELECT id, session_id, event_id, t, distance, velocity, peak_velocity, points, "
                                   "computed_at FROM mouse_metrics ORDER BY id"),
    }


def partitions_of(app, table: str) -> dict[str, str]:
    return dict(rows(app, "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                          "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = CAST(:t AS regclass)", t=table))


def summary_from_rows(before: dict) -> dict:
    """What the errors summary said before 0003 (it counted the tables themselves), from the rows."""
    registered = {key for key, _ in launch_registry()}
    by_kind = Counter(kind for _, _, _, kind, *_ in before["rejections"])
    by_type = Counter((category, name, kind) for _, _, _, kind, category, name, _, _ in before["rejections"]
                      if category is not None and name is not None)
    unregistered = Counter((category, name) for _, _, _, _, category, name, *_ in before["events"]
                           if (category, name) not in registered)
    return {"by_kind": dict(by_kind),
            "by_type": sorted((c, n, k, count) for (c, n, k), count in by_type.items()),
            "unregistered": sorted((c, n, count) for (c, n), count in unregistered.items())}


def summary_from_api(app) -> dict:
    key = make_key_factory(app)("read")
    response = app.test_client().get("/api/v1/errors/summary", headers={"X-API-Key": key})
    assert response.status_code == 200, response.json
    body = response.json
    return {"by_kind": body["by_kind"],
            "by_type": sorted((t["category"], t["name"], t["kind"], t["count"]) for t in body["by_type"]),
            "unregistered": sorted((t["category"], t["name"], t["count"]) for t in body["unregistered"])}


def expected_windows(now: datetime, times: list[datetime], interval: str, table: str) -> set[str]:
    """The windows 0003 makes: those of the last 400 days holding rows, the current one and AHEAD after it."""
    oldest = now - timedelta(days=BACKFILL_DAYS)
    starts = {window_start(interval, at) for at in times if at >= oldest}
    starts |= set(window_starts(interval, now, AHEAD + 1))
    return {window_name(table, interval, start) for start in starts}


def check_upgraded(app, before: dict, seeded: dict, now: datetime) -> None:
    assert contents(app) == before  # every row, ids and values, of every table

    # Each session's count is the number of its events, as before.
    counted = Counter(row[3] for row in before["events"])
    assert {sid: count for sid, _, _, count in contents(app)["sessions"]} == counted

    event_times = [row[7] for row in before["events"]]
    windows = {
        "events": expected_windows(now, event_times, "month", "events"),
        "rejections": expected_windows(now, [row[1] for row in before["rejections"]], "month", "rejections"),
        "mouse_metrics": expected_windows(now, [row[8] for row in before["mouse_metrics"]], "month", "mouse_metrics"),
        "mouse_points": expected_windows(now, [datetime.fromtimestamp(row[2] / 1000, UTC) for row in before["mouse_points"]],
                                         "day", "mouse_points"),
        "arrival_counts": {window_name("arrival_counts", "month", s) for s in window_starts("month", now, AHEAD + 1)},
        # 0005 makes the hours' windows that hold counts too (so its backfill is not in DEFAULT).
        "arrival_counts_hourly": expected_windows(
            now, [row[8] for row in before["events"]] + [row[1] for row in before["rejections"]], "month",
            "arrival_counts_hourly"),
    }
    assert len(windows["events"]) >= 14 and len(windows["mouse_points"]) == 4 + AHEAD + 1
    for table, wanted in windows.items():
        found = partitions_of(app, table)
        assert found.pop(f"{table}_default") == "DEFAULT", table
        assert set(found) == wanted, table

    # What no window of the last 400 days holds is in events_default: year 1, 2021, and the months
    # fifteen months back.
    in_default = {row[0] for row in rows(app, "SELECT event_id FROM events_default")}
    assert in_default == {row[2] for row in before["events"]
                          if window_name("events", "month", window_start("month", row[7])) not in windows["events"]}
    assert {row[3] for row in before["events"] if row[2] in in_default} >= {s for s, _ in seeded["odd"].values()}
    assert len(in_default) > 2

    # arrival_counts counts every stored event and every refusal, per minute of arrival and type.
    expected = Counter()
    for row in before["events"]:
        expected[(row[8].replace(second=0, microsecond=0), "stored", row[4], row[5])] += 1
    for row in before["rejections"]:
        expected[(row[1].replace(second=0, microsecond=0), row[3], row[4] or "", row[5] or "")] += 1
    counts = rows(app, "SELECT minute, outcome, category, name, count FROM arrival_counts")
    assert {tuple(row[:4]): row[4] for row in counts} == dict(expected)
    # And arrival_counts_hourly (0005) the same per hour of arrival.
    hours = Counter()
    for (minute, *key), count in expected.items():
        hours[(minute.astimezone(UTC).replace(minute=0), *key)] += count
    counts = rows(app, "SELECT hour, outcome, category, name, count FROM arrival_counts_hourly")
    assert {tuple(row[:4]): row[4] for row in counts} == dict(hours)

    # A session's metric series starts at its totals' created_at: the first computed_at.
    starts = dict(rows(app, "SELECT session_id, created_at FROM mouse_totals"))
    for session_id in seeded["mouse_sessions"]:
        assert starts[session_id] == min(row[8] for row in before["mouse_metrics"] if row[1] == session_id)

    assert summary_from_api(app) == summary_from_rows(before)


def test_the_partition_migration_keeps_every_row(at_0002):
    app = at_0002
    now = datetime.now(UTC)
    seeded = seed(app, now)
    before = contents(app)
    assert len(before["events"]) == EVENTS + 2 and len(before["sessions"]) == SESSIONS + 2
    assert len(before["rejections"]) == REJECTIONS and len(before["mouse_metrics"]) == 40
    assert len(before["mouse_points"]) == 4 * 6 * 10
    assert max(row[7] for row in before["events"]) - min(row[7] for row in before["events"] if row[7].year > 2022) \
        > timedelta(days=420)

    migrate(app, upgrade)
    check_upgraded(app, before, seeded, now)

    # Down to 0002 (plain tables again, every row kept) and up again.
    migrate(app, downgrade, "0002")
    assert rows(app, "SELECT relname, relkind FROM pg_class WHERE relname IN "
                     "('events', 'rejections', 'mouse_points', 'mouse_metrics', 'arrival_counts', "
                     "'arrival_counts_hourly') ORDER BY 1") == [
        ("events", "r"), ("mouse_metrics", "r"), ("mouse_points", "r"), ("rejections", "r")]
    down = contents(app)
    assert down == before
    migrate(app, upgrade)
    check_upgraded(app, before, seeded, now)

    # The sequences go on from where they were: new rows get ids above every kept one.
    with app.app_context():
        application_id = db.session.execute(text("SELECT id FROM applications WHERE name = 'web'")).scalar()
        session_id = str(uuid.uuid4())
        store_message(build_message([build_part(application_id, datetime.now(UTC), [
            {"event_id": str(uuid.uuid4()), "session_id": session_id, "category": "mouse", "name": "move",
             "data": {"points": [{"t": epoch_ms(now), "x": 0, "y": 0}, {"t": epoch_ms(now) + 10, "x": 3, "y": 4}]},
             "timestamp": now.isoformat()}], [])]))
    new_event = rows(app, "SELECT id FROM events WHERE session_id = :s", s=session_id)
    new_metric = rows(app, "SELECT id FROM mouse_metrics WHERE session_id = :s", s=session_id)
    assert len(new_event) == 1 and new_event[0][0] > max(row[0] for row in before["events"])
    assert len(new_metric) == 1 and new_metric[0][0] > max(row[0] for row in before["mouse_metrics"])
    assert rows(app, "SELECT count(*) FROM events")[0][0] == EVENTS + 3
