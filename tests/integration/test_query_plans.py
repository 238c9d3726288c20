"""Every filter of the read API is served by an index on PostgreSQL, not by a scan of the table.

A database of its own, seeded with 40,000 events and 20,000 rejections spread like real traffic
(server-side generate_series, so it takes a second) in the partitions of their month, analysed,
then each statement the services would run is EXPLAINed. The tables are partitioned: a plan names
the partitions' own indexes, which PostgreSQL made from the parent's (looked up in pg_inherits).
"""

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable

from app.event_types import launch_registry
from app.extensions import db
from app.maintenance.windows import next_window, window_name, window_start
from app.queries.errors import unregistered_events_query
from app.queries.events import EventFilters, RejectionFilters, events_query, rejections_query, within_session_span
from tests.fixtures.apps import migrated_app

EVENTS, SESSIONS, REJECTIONS = 40_000, 800, 20_000
START = datetime(2021, 1, 1, tzinfo=UTC)
HOUR = (START + timedelta(days=3), START + timedelta(days=3, hours=1))


class Explain(Executable, ClauseElement):
    """`EXPLAIN <statement>`, with the statement's parameters bound as the service binds them."""

    inherit_cache = False

    def __init__(self, statement):
        self.statement = statement


@compiles(Explain, "postgresql")
def _explain(element, compiler, **kw):
    return "EXPLAIN " + compiler.process(element.statement, **kw)


def session_uuid(number: int) -> uuid.UUID:
    return uuid.UUID(hashlib.md5(f"session-{number}".encode()).hexdigest())


@pytest.fixture(scope="module")
def seeded_app(make_database, tmp_path_factory):
    """An app on a fresh PostgreSQL database (migrated) holding enough rows for the planner."""
    app = migrated_app(DATABASE_URL=make_database(), EYE_DATA_DIR=str(tmp_path_factory.mktemp("plans")),
                       SECRET_KEY="plans")
    with app.app_context():
        month = window_start("month", START)
        for table in ("events", "rejections"):
            db.session.execute(text(
                f"CREATE TABLE {window_name(table, 'month', month)} PARTITION OF {table} "
                f"FOR VALUES FROM ('{month.isoformat()}') TO ('{next_window('month', month).isoformat()}')"))
        db.session.execute(text("INSERT INTO applications (name) VALUES ('web'), ('mobile'), ('kiosk')"))
        # Sessions of ~50 events each, a few seconds apart, starting at times spread over 10 days;
        # event types in realistic proportions; arrival a moment after the event.
        db.session.execute(text("""
            INSERT INTO events (application_id, event_id, session_id, category, name, data, timestamp, received_at)
            SELECT 1 + (s % 3), gen_random_uuid(), md5('session-' || s)::uuid,
                   (ARRAY['mouse','mouse','mouse','mouse','page interaction','page interaction',
                          'page interaction','form interaction','video','page interaction'])[1 + i % 10],
                   (ARRAY['move','move','move','move','pageview','pageview',
                          'cta click','submit','play','scroll'])[1 + i % 10],
                   '{"host": "example.com", "path": "/"}', ts, ts + interval '150 milliseconds'
            FROM generate_series(0, :events - 1) AS i,
                 LATERAL (SELECT i % :sessions AS s) AS session,
                 LATERAL (SELECT :start + (hashtext(s::text)::bigint % 864000 + 864000) % 864000
                                 * interval '1 second' + (i / :sessions) * interval '4 seconds' AS ts) AS t
        """), {"events": EVENTS, "sessions": SESSIONS, "start": START})
        db.session.execute(text("""
            INSERT INTO rejections (id, received_at, application_id, kind, category, name, errors, raw)
            SELECT gen_random_uuid(), :start + i * interval '43 seconds', 1 + i % 3,
                   CASE WHEN i % 100 = 0 THEN 'future_timestamp' ELSE 'invalid_payload' END,
                   'page interaction', 'pageview', '{}', '{}'
            FROM generate_series(0, :rejections - 1) AS i
        """), {"rejections": REJECTIONS, "start": START})
        # What the workers keep beside the events: their sessions and the counts per arrival minute.
        db.session.execute(text("""
            INSERT INTO sessions (session_id, first_event_at, last_event_at, event_count)
            SELECT session_id, min(timestamp), max(timestamp), count(*) FROM events GROUP BY session_id;
            INSERT INTO arrival_counts (minute, outcome, category, name, count)
            SELECT date_trunc('minute', received_at), 'stored', category, name, count(*) FROM events GROUP BY 1, 3, 4
        """))
        db.session.commit()
        db.session.execute(text("ANALYZE"))
        db.session.commit()
    # The context is not held across the tests: a session left open in it would outlive the module.
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def plan(app, statement) -> str:
    with app.app_context():
        return "\n".join(row[0] for row in db.session.execute(Explain(statement)))


def uses_index(app, shown: str, indexes) -> bool:
    """Whether the plan reads one of `indexes` (the parent's names) through a partition's copy."""
    names = [indexes] if isinstance(indexes, str) else list(indexes)
    with app.app_context():
        children = db.session.scalars(text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = ANY(:names)"), {"names": names}).all()
    return any(f" {child} " in shown or f" {child}\n" in shown or shown.endswith(f" {child}")
               for child in children)


def scans_filled_partition(shown: str, table: str) -> bool:
    """A sequential scan of the partition holding the rows (the others are empty: scanning one costs nothing)."""
    return f"Seq Scan on {window_name(table, 'month', window_start('month', START))} " in shown


AFTER = (HOUR[0] + timedelta(minutes=20), HOUR[0] + timedelta(minutes=20), 12345)
# A name that belongs to one category narrows as well as the (category, name) pair does.
TYPE_INDEXES = ("ix_events_type_order", "ix_events_name_order")

EVENT_CASES = {
    "a session's events": (EventFilters(session_id=session_uuid(7)), "ix_events_session_order"),
    "a session's next page": (EventFilters(session_id=session_uuid(7)), "ix_events_session_order", AFTER),
    "a type over an hour": (EventFilters(category="page interaction", name="cta click", since=HOUR[0],
                                         until=HOUR[1]), TYPE_INDEXES),
    "a type's next page": (EventFilters(category="page interaction", name="cta click", since=HOUR[0],
                                        until=HOUR[1]), TYPE_INDEXES, AFTER),
    "a time range": (EventFilters(since=HOUR[0], until=HOUR[1]), "ix_events_order"),
    "a time range's next page": (EventFilters(since=HOUR[0], until=HOUR[1]), "ix_events_order", AFTER),
    "a time range from a start": (EventFilters(since=HOUR[0]), "ix_events_order"),
    "a category": (EventFilters(category="form interaction"), "ix_events_category_order"),
    "a name": (EventFilters(name="submit"), "ix_events_name_order"),
    "an application": (EventFilters(application="mobile"), "ix_events_application_order"),
    "everything": (EventFilters(), "ix_events_order"),
}


@pytest.mark.parametrize("case", EVENT_CASES)
def test_event_listing_uses_its_index(seeded_app, case):
    filters, indexes, *after = EVENT_CASES[case]
    if filters.session_id is not None:
        with seeded_app.app_context():  # as list_events does: the session's own span
            filters = within_session_span(filters)
    shown = plan(seeded_app, events_query(filters, 101, after[0] if after else None))
    assert not scans_filled_partition(shown, "events"), shown
    assert uses_index(seeded_app, shown, indexes), shown


REJECTION_CASES = {
    "everything": (RejectionFilters(), "ix_rejections_received"),
    "a time range": (RejectionFilters(since=HOUR[0], until=HOUR[1]), "ix_rejections_received"),
    "a rare kind": (RejectionFilters(kind="future_timestamp"), "ix_rejections_kind_received"),
    "an application over an hour": (RejectionFilters(application="web", since=HOUR[0], until=HOUR[1]),
                                     "ix_rejections_"),
}


@pytest.mark.parametrize("case", REJECTION_CASES)
def test_errors_listing_uses_an_index(seeded_app, case):
    filters, index = REJECTION_CASES[case]
    shown = plan(seeded_app, rejections_query(filters, 101))
    assert not scans_filled_partition(shown, "rejections"), shown
    assert uses_index(seeded_app, shown, [index] if index != "ix_rejections_" else
                      ["ix_rejections_received", "ix_rejections_kind_received", "ix_rejections_application_received"]), shown


def test_unregistered_count_over_whole_minutes_reads_only_the_counts(seeded_app):
    shown = plan(seeded_app, unregistered_events_query(*HOUR, launch_registry()))
    assert "arrival_counts" in shown, shown
    assert " on events" not in shown, shown


def test_unregistered_count_reads_events_only_at_the_window_edges_through_the_arrival_index(seeded_app):
    since, until = HOUR[0] + timedelta(seconds=20), HOUR[1] + timedelta(seconds=30)
    shown = plan(seeded_app, unregistered_events_query(since, until, launch_registry()))
    assert "arrival_counts" in shown, shown
    assert not scans_filled_partition(shown, "events"), shown
    assert uses_index(seeded_app, shown, "ix_events_received"), shown


def test_the_seed_is_what_the_plans_assume(seeded_app):
    """The plans above mean something only if the tables are as large and spread as intended."""
    with seeded_app.app_context():
        counts = db.session.execute(text(
            "SELECT count(*), count(DISTINCT session_id), min(timestamp), max(timestamp) FROM events")).one()
        in_hour = db.session.scalar(text(
            "SELECT count(*) FROM events WHERE timestamp >= :since AND timestamp < :until"),
            {"since": HOUR[0], "until": HOUR[1]})
    assert counts[0] == EVENTS and counts[1] == SESSIONS
    assert counts[3] - counts[2] > timedelta(days=9)
    assert 50 < in_hour < 1000
