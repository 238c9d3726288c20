"""The reads touch only the partitions they need (EXPLAIN on the real PostgreSQL).

A database of its own holds five months of events, rejections, arrival counts and mouse metric
series (server-side generate_series), each month in a partition made by partitions.ensure, then
analysed. Each read runs through the service's own function while its SQL is captured (a
before_cursor_execute listener on the engine); each captured statement is then EXPLAINed with the
very parameters it ran with, and the relations its plan scans are compared with the windows the
read needs. The bounds are constants by then, so the plans are pruned when planned.
"""

import hashlib
import re
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, text

from app import create_app
from app.event_types import launch_registry
from app.extensions import db
from app.maintenance import partitions
from app.maintenance.windows import next_window, window_name, window_start
from app.queries.errors import error_summary, unregistered_events
from app.queries.events import EventFilters, RejectionFilters, events_query, list_events, list_rejections
from app.queries.mouse import metrics_page

EVENTS, SESSIONS, REJECTIONS, MOUSE_SESSIONS, METRICS_PER_SESSION = 30_000, 600, 10_000, 200, 40
MONTHS = 5
NOW = datetime.now(UTC)
CURRENT = window_start("month", NOW)
STARTS = [CURRENT]
for _ in range(MONTHS):
    STARTS.insert(0, window_start("month", STARTS[0] - timedelta(days=1)))
SEEDED = STARTS[:MONTHS]  # the five whole months before the current one hold the data
START, END = SEEDED[0], CURRENT
BOUNDARY = SEEDED[2]  # sessions made to straddle the start of the third month
SPAN_SECONDS = int((END - START).total_seconds()) - 3600


def session_uuid(label) -> uuid.UUID:
    return uuid.UUID(hashlib.md5(f"plan-session-{label}".encode()).hexdigest())


BOUNDARY_SESSION = session_uuid("boundary")
BOUNDARY_MOUSE = session_uuid("mouse-boundary")


@pytest.fixture(scope="module")
def seeded_app(copy_migrated_database, tmp_path_factory):
    """An app on a database of its own (at the migrations' head), seeded and analysed."""
    app = create_app({"DATABASE_URL": copy_migrated_database(), "TESTING": True, "SECRET_KEY": "plans",
                      "EYE_DATA_DIR": str(tmp_path_factory.mktemp("partition-plans")), "CELERY_BROKER_URL": "",
                      "SOCKETIO_MESSAGE_QUEUE": ""})
    with app.app_context():
        # The windows of the seeded months (ensure makes a window and the three after it).
        partitions.ensure(now=SEEDED[0] + timedelta(days=1))
        partitions.ensure(now=SEEDED[-1] + timedelta(days=1))
        run = db.session.execute
        run(text("INSERT INTO applications (name) VALUES ('web'), ('mobile'), ('kiosk')"))
        types = ("ARRAY['page interaction','page interaction','mouse','custom','form interaction','custom']",
                 "ARRAY['pageview','cta click','move','thing','submit','other']")
        # Sessions of 50 events, 4 s apart, each starting somewhere in the five months.
        run(text(f"""
            INSERT INTO events (application_id, event_id, session_id, category, name, data, timestamp, received_at)
            SELECT 1 + s % 3, gen_random_uuid(), md5('plan-session-' || s)::uuid,
                   ({types[0]})[1 + i % 6], ({types[1]})[1 + i % 6], '{{}}', ts,
                   ts + (i % 7) * interval '150 milliseconds'
            FROM generate_series(0, :events - 1) AS i,
                 LATERAL (SELECT i % :sessions AS s) AS session,
                 LATERAL (SELECT CAST(:start AS timestamptz)
                                 + ((hashtext(s::text)::bigint % :span + :span) % :span) * interval '1 second'
                                 + (i / :sessions) * interval '4 seconds' AS ts) AS t
        """), {"events": EVENTS, "sessions": SESSIONS, "start": START, "span": SPAN_SECONDS})
        # One session from half an hour before a month's start to half an hour after it.
        run(text("""
            INSERT INTO events (application_id, event_id, session_id, category, name, data, timestamp, received_at)
            SELECT 1, gen_random_uuid(), :s, 'page interaction', 'pageview', '{}', ts, ts
            FROM generate_series(0, 59) AS k,
                 LATERAL (SELECT CAST(:boundary AS timestamptz) + (k - 30) * interval '1 minute' AS ts) AS t
        """), {"s": BOUNDARY_SESSION, "boundary": BOUNDARY})
        run(text("INSERT INTO sessions (session_id, first_event_at, last_event_at, event_count) "
                 "SELECT session_id, min(timestamp), max(timestamp), count(*) FROM events GROUP BY session_id"))
        run(text("""
            INSERT INTO rejections (id, received_at, application_id, kind, category, name, errors, raw)
            SELECT gen_random_uuid(), CAST(:start AS timestamptz) + (i * (:span / :n)) * interval '1 second', 1 + i % 3,
                   CASE WHEN i % 50 = 0 THEN 'future_timestamp' ELSE 'invalid_payload' END,
                   'page interaction', 'pageview', '{}', '{}'
            FROM generate_series(0, :n - 1) AS i
        """), {"n": REJECTIONS, "start": START, "span": SPAN_SECONDS})
        # The rollup the workers keep, as migration 0003 builds it from the stored rows.
        run(text("""
            INSERT INTO arrival_counts (minute, outcome, category, name, count)
            SELECT date_trunc('minute', received_at), 'stored', category, name, count(*) FROM events GROUP BY 1, 3, 4
            UNION ALL
            SELECT date_trunc('minute', received_at), kind, coalesce(category, ''), coalesce(name, ''), count(*)
            FROM rejections GROUP BY 1, 2, 3, 4
        """))
        # Metric series of 40 batches, 10 s apart, per mouse session; one straddles a month's start.
        run(text("""
            INSERT INTO mouse_metrics (session_id, event_id, t, distance, velocity, peak_velocity, points, computed_at)
            SELECT md5('plan-session-mouse-' || m)::uuid, gen_random_uuid(), k * 1000.0, k, 1, 1, k,
                   CAST(:start AS timestamptz) + ((hashtext('m' || m)::bigint % :span + :span) % :span) * interval '1 second'
                   + k * interval '10 seconds'
            FROM generate_series(0, :sessions - 1) AS m, generate_series(0, :per - 1) AS k
            ORDER BY m, k
        """), {"sessions": MOUSE_SESSIONS, "per": METRICS_PER_SESSION, "start": START, "span": SPAN_SECONDS})
        run(text("""
            INSERT INTO mouse_metrics (session_id, event_id, t, distance, velocity, peak_velocity, points, computed_at)
            SELECT :s, gen_random_uuid(), k * 1000.0, k, 1, 1, k,
                   CAST(:boundary AS timestamptz) + (k - 20) * interval '1 minute'
            FROM generate_series(0, 39) AS k ORDER BY k
        """), {"s": BOUNDARY_MOUSE, "boundary": BOUNDARY})
        run(text("INSERT INTO mouse_totals (session_id, distance, peak_velocity, points, created_at, updated_at) "
                 "SELECT session_id, sum(distance), max(peak_velocity), sum(points), min(computed_at), max(computed_at) "
                 "FROM mouse_metrics GROUP BY session_id"))
        db.session.commit()
        db.session.execute(text("ANALYZE"))
        db.session.commit()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


# --- Capturing and explaining ---------------------------------------------------------------


@contextmanager
def captured(app):
    """The app context, and the (statement, parameters) of every statement run in it meanwhile."""
    statements = []

    def record(connection, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", record)
        try:
            yield statements
        finally:
            event.remove(db.engine, "before_cursor_execute", record)


def explain(app, statement: str, parameters) -> str:
    with app.app_context():
        plan = db.session.connection().exec_driver_sql("EXPLAIN " + statement, parameters).scalars().all()
        db.session.rollback()
    return "\n".join(plan)


def partition_names(app) -> dict[str, str]:
    """Every partition's name, with its parent table."""
    with app.app_context():
        return dict(db.session.execute(text(
            "SELECT c.relname, p.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relkind = 'p'"
        )).all())


def scanned(app, plan: str, table: str) -> set[str]:
    """The partitions of `table` the plan reads."""
    names = partition_names(app)
    return {name for name in re.findall(r" on (\w+)", plan) if names.get(name) == table}


def the_statement(statements, table: str) -> tuple:
    matching = [(sql, params) for sql, params in statements if re.search(rf"\bFROM {table}\b", sql)]
    assert len(matching) == 1, statements
    return matching[0]


def windows_between(table: str, first: datetime, last: datetime) -> set[str]:
    """The monthly partitions holding [first, last]."""
    names, start = set(), window_start("month", first)
    while start <= last:
        names.add(window_name(table, "month", start))
        start = next_window("month", start)
    return names


# --- The seed ---------------------------------------------------------------------------------


def test_the_seed_fills_several_partitions(seeded_app):
    """The plans below mean something only if the rows are spread over the months, each in its partition."""
    with seeded_app.app_context():
        per_partition = dict(db.session.execute(text(
            "SELECT tableoid::regclass::text, count(*) FROM events GROUP BY 1")).all())
        rejected = dict(db.session.execute(text(
            "SELECT tableoid::regclass::text, count(*) FROM rejections GROUP BY 1")).all())
        metrics = dict(db.session.execute(text(
            "SELECT tableoid::regclass::text, count(*) FROM mouse_metrics GROUP BY 1")).all())
    assert set(per_partition) == {window_name("events", "month", s) for s in SEEDED}
    assert min(per_partition.values()) > 3_000 and sum(per_partition.values()) == EVENTS + 60
    assert set(rejected) == {window_name("rejections", "month", s) for s in SEEDED}
    assert set(metrics) == {window_name("mouse_metrics", "month", s) for s in SEEDED}
    assert len(scanned(seeded_app, explain(seeded_app, "SELECT * FROM events", {}), "events")) >= MONTHS + 4


# --- Events -----------------------------------------------------------------------------------


def a_session_within_one_month(app) -> tuple[uuid.UUID, datetime, int]:
    with app.app_context():
        session_id, first, count = db.session.execute(text(
            "SELECT session_id, first_event_at, event_count FROM sessions "
            "WHERE date_trunc('month', first_event_at) = date_trunc('month', last_event_at) AND event_count >= 50 "
            "AND first_event_at >= :month ORDER BY session_id LIMIT 1"), {"month": SEEDED[1]}).one()
    return session_id, first, count


@pytest.mark.parametrize("which", ["within a month", "across a month's start"])
def test_a_sessions_events_read_only_the_partitions_of_its_span(seeded_app, which):
    if which == "within a month":
        session_id, first, count = a_session_within_one_month(seeded_app)
        wanted = {window_name("events", "month", first)}
    else:
        session_id, count = BOUNDARY_SESSION, 60
        wanted = {window_name("events", "month", BOUNDARY - timedelta(days=1)), window_name("events", "month", BOUNDARY)}
    with captured(seeded_app) as statements:
        page = list_events(EventFilters(session_id=session_id), 100)
    assert len(page.items) == count and {item["session_id"] for item in page.items} == {session_id}
    statement = the_statement(statements, "events")
    plan = explain(seeded_app, *statement)
    assert scanned(seeded_app, plan, "events") == wanted, plan
    assert "events_default" not in plan, plan

    # Without the span the same filter reads every partition: what the span is for.
    with captured(seeded_app) as statements:
        db.session.execute(events_query(EventFilters(session_id=session_id), 101)).all()
    everything = scanned(seeded_app, explain(seeded_app, *the_statement(statements, "events")), "events")
    assert len(everything) >= MONTHS + 4 and wanted < everything


def test_a_time_bounded_listing_reads_only_its_window(seeded_app):
    month = SEEDED[3]
    since, until = month + timedelta(days=3, hours=2), month + timedelta(days=5)
    with captured(seeded_app) as statements:
        page = list_events(EventFilters(since=since, until=until), 50)
    assert len(page.items) == 50 and page.next_cursor
    assert all(since <= item["timestamp"] < until for item in page.items)
    plan = explain(seeded_app, *the_statement(statements, "events"))
    assert scanned(seeded_app, plan, "events") == {window_name("events", "month", month)}, plan
    assert "Seq Scan on events" not in plan, plan

    # A window across a month's start reads the two months.
    with captured(seeded_app) as statements:
        list_events(EventFilters(category="page interaction", since=BOUNDARY - timedelta(hours=2),
                                 until=BOUNDARY + timedelta(hours=2)), 50)
    plan = explain(seeded_app, *the_statement(statements, "events"))
    assert scanned(seeded_app, plan, "events") == windows_between("events", BOUNDARY - timedelta(hours=2), BOUNDARY), plan


# --- The errors store ---------------------------------------------------------------------------


def test_a_rejections_window_reads_only_its_partitions(seeded_app):
    since, until = SEEDED[1] + timedelta(days=20), SEEDED[2] + timedelta(days=2)  # across a month's start
    with captured(seeded_app) as statements:
        page = list_rejections(RejectionFilters(since=since, until=until), 100)
    assert len(page.items) == 100 and all(since <= item["received_at"] < until for item in page.items)
    plan = explain(seeded_app, *the_statement(statements, "rejections"))
    assert scanned(seeded_app, plan, "rejections") == windows_between("rejections", since, until), plan
    assert "rejections_default" not in plan, plan

    with captured(seeded_app) as statements:
        list_rejections(RejectionFilters(kind="future_timestamp", since=SEEDED[4] + timedelta(days=1),
                                         until=SEEDED[4] + timedelta(days=2)), 100)
    plan = explain(seeded_app, *the_statement(statements, "rejections"))
    assert scanned(seeded_app, plan, "rejections") == {window_name("rejections", "month", SEEDED[4])}, plan


def test_the_summary_without_a_window_reads_the_rollup_alone(seeded_app):
    with captured(seeded_app) as statements:
        summary = error_summary(types=launch_registry())
    assert statements
    for statement, parameters in statements:
        assert not re.search(r"\b(events|rejections)\b", statement), statement
        plan = explain(seeded_app, statement, parameters)
        assert scanned(seeded_app, plan, "events") == set() and scanned(seeded_app, plan, "rejections") == set(), plan
        assert scanned(seeded_app, plan, "arrival_counts"), plan

    # And it counts what the tables hold.
    with seeded_app.app_context():
        kinds = dict(db.session.execute(text("SELECT kind, count(*) FROM rejections GROUP BY kind")).all())
        unregistered = dict(db.session.execute(text(
            "SELECT category || '/' || name, count(*) FROM events WHERE category = 'custom' GROUP BY 1")).all())
    assert summary["by_kind"] == kinds
    assert {f"{u['category']}/{u['name']}": u["count"] for u in summary["unregistered"]} == unregistered


def test_unregistered_events_over_a_window_read_the_rollup_and_the_edge_minutes(seeded_app):
    registry = launch_registry()
    since = SEEDED[1] + timedelta(days=10, seconds=17.25)
    until = SEEDED[3] + timedelta(days=4, seconds=42.5)
    with seeded_app.app_context():
        received_indexes = set(db.session.execute(text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST('ix_events_received' AS regclass)")).scalars())
        sizes = dict(db.session.execute(text("SELECT relname, reltuples FROM pg_class WHERE relkind = 'r'")).all())
        expected = dict(db.session.execute(text(
            "SELECT category || '/' || name, count(*) FROM events WHERE received_at >= :s AND received_at < :u "
            "AND category = 'custom' GROUP BY 1"), {"s": since, "u": until}).all())
    with captured(seeded_app) as statements:
        counted = unregistered_events(since, until, registry)
    assert len(statements) == 1
    plan = explain(seeded_app, *statements[0])
    assert {f"{row['category']}/{row['name']}": row["count"] for row in counted} == expected
    assert sum(expected.values()) > 1000

    assert scanned(seeded_app, plan, "arrival_counts") == windows_between("arrival_counts", since, until), plan
    events_read = scanned(seeded_app, plan, "events")
    big = {name for name in events_read if sizes.get(name, 0) > 1000}
    assert big, plan  # received_at says nothing about the partition: every one is read, by its index
    assert not {name for name in re.findall(r"Seq Scan on (\w+)", plan) if name in big}, plan
    used = set(re.findall(r"Index (?:Only )?Scan using (\w+) on events", plan)) | {
        index for index in re.findall(r"Bitmap Index Scan on (\w+)", plan) if index.startswith("events")}
    assert used and used <= received_indexes, plan


# --- Mouse metrics ----------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["within a month", "across a month's start"])
def test_a_sessions_metric_series_reads_only_the_partitions_of_its_span(seeded_app, which):
    with seeded_app.app_context():
        if which == "within a month":
            session_id, created, updated = db.session.execute(text(
                "SELECT session_id, created_at, updated_at FROM mouse_totals "
                "WHERE date_trunc('month', created_at) = date_trunc('month', updated_at) AND session_id <> :b "
                "ORDER BY session_id LIMIT 1"), {"b": BOUNDARY_MOUSE}).one()
        else:
            session_id, created, updated = db.session.execute(text(
                "SELECT session_id, created_at, updated_at FROM mouse_totals WHERE session_id = :b"),
                {"b": BOUNDARY_MOUSE}).one()
    wanted = windows_between("mouse_metrics", created, updated)
    assert len(wanted) == (1 if which == "within a month" else 2)
    with captured(seeded_app) as statements:
        page = metrics_page(session_id, 25, None)
    assert len(page["items"]) == 25 and page["next_cursor"]
    plan = explain(seeded_app, *the_statement(statements, "mouse_metrics"))
    assert scanned(seeded_app, plan, "mouse_metrics") == wanted, plan
    assert "mouse_metrics_default" not in plan, plan

    with captured(seeded_app) as statements:
        rest = metrics_page(session_id, 100, page["next_cursor"])
    assert len(rest["items"]) == METRICS_PER_SESSION - 25
    plan = explain(seeded_app, *the_statement(statements, "mouse_metrics"))
    assert scanned(seeded_app, plan, "mouse_metrics") == wanted, plan

