"""The storage code's columns go to PostgreSQL as array literals: every value must come back as sent."""

import math
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from app.extensions import db
from app.identity import keys
from app.messages import build_message, build_part
from app.models import Event
from app.storage.database import array_of_numbers, array_of_text, raw_cursor
from app.storage.message import store_message

AWKWARD_TEXT = [
    "plain", "", " padded ", "NULL", "null", 'a "quoted" word', "back\\slash", "ends with \\",
    "\\\"", "{braces}", "a,comma", "new\nline\ttab", "ünïcødé", "emoji 👁", "'single'", "NULL,\"{}\\",
]


def read_back(app, sql: str, literal: str):
    with app.app_context(), raw_cursor() as cursor:
        cursor.execute(sql, {"values": literal})
        values = cursor.fetchone()[0]
        db.session.rollback()
    return values


def test_text_comes_back_as_sent_whatever_it_holds(pg_app):
    sent = [*AWKWARD_TEXT, None]
    assert read_back(pg_app, "SELECT %(values)s::text[]", array_of_text(sent)) == sent


def test_numbers_come_back_exactly(pg_app):
    sent = [0.1, -0.0, 5e-324, 1.7976931348623157e308, 1732990000000.125, 2.0 ** 53 + 2, 1e-7, 123456789.123456789]
    back = read_back(pg_app, "SELECT %(values)s::float8[]", array_of_numbers(sent))
    assert back == sent
    assert math.copysign(1, back[1]) == -1  # the sign of zero too
    whole = [0, -1, 2 ** 62, 7]
    assert read_back(pg_app, "SELECT %(values)s::bigint[]", array_of_numbers(whole)) == whole


def test_uuids_and_instants_come_back_as_sent(pg_app):
    ids = [uuid.uuid4(), uuid.uuid4()]
    assert read_back(pg_app, "SELECT %(values)s::uuid[]", array_of_text(ids)) in (ids, [str(i) for i in ids])
    instants = [datetime(2026, 11, 30, 21, 0, 0, 123456, tzinfo=UTC),
                datetime(2026, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
                datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-8)))]
    assert read_back(pg_app, "SELECT %(values)s::timestamptz[]", array_of_text(instants)) == instants


@pytest.mark.parametrize("not_a_number", [True, "1", None])
def test_a_number_column_refuses_what_is_not_a_number(pg_app, not_a_number):
    # Never read as something else: PostgreSQL refuses the literal and the transaction fails.
    with pytest.raises(Exception, match="(?i)invalid input syntax|malformed array"):
        read_back(pg_app, "SELECT %(values)s::float8[]", array_of_numbers([1.0, not_a_number]))


def test_events_with_awkward_text_and_data_are_stored_exactly(pg_app):
    at = datetime.now(UTC).replace(microsecond=0)
    session_id = str(uuid.uuid4())
    events = [
        {"event_id": str(uuid.uuid4()), "session_id": session_id, "category": text or "empty", "name": text[::-1] or "x",
         "timestamp": (at + timedelta(milliseconds=i)).isoformat(),
         "data": {"text": text, "nested": {"list": [text, 1.5, None, True]}, text: i}}
        for i, text in enumerate(AWKWARD_TEXT)
    ]
    with pg_app.app_context():
        application_id = keys.get_or_create_application(f"arrays-{uuid.uuid4().hex[:8]}").id
        persisted = store_message(build_message([build_part(application_id, at, events, [])]))
        assert len(persisted.new_events) == len(events)
        stored = {str(e.event_id): e for e in db.session.scalars(
            select(Event).where(Event.session_id == uuid.UUID(session_id)))}
        for event in events:
            row = stored[event["event_id"]]
            assert (row.category, row.name, row.data) == (event["category"], event["name"], event["data"])
            assert row.timestamp == datetime.fromisoformat(event["timestamp"])
            assert row.received_at == at
