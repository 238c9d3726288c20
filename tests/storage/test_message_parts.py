"""A message of many parts (a worker's group) is stored in one statement, each event once per application."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from app.extensions import db
from app.identity import keys
from app.messages import build_message, build_part
from app.models import Event, Session
from app.storage.message import store_message


def pageview(session_id: str, event_id: str, timestamp: datetime) -> dict:
    return {"event_id": event_id, "session_id": session_id, "category": "page interaction", "name": "pageview",
            "data": {"host": "parts.example.com", "path": "/"}, "timestamp": timestamp.isoformat()}


def test_parts_of_two_applications_with_the_same_event_identity_are_two_events(pg_app):
    session_id, event_id = str(uuid.uuid4()), str(uuid.uuid4())
    at = datetime.now(UTC).replace(microsecond=0)
    with pg_app.app_context():
        first = keys.get_or_create_application(f"parts-{uuid.uuid4().hex[:8]}").id
        second = keys.get_or_create_application(f"parts-{uuid.uuid4().hex[:8]}").id
        same = pageview(session_id, event_id, at)
        other = pageview(session_id, str(uuid.uuid4()), at + timedelta(seconds=1))
        message = build_message([
            build_part(first, at, [same, same], []),  # the same event twice in one part: one event
            build_part(second, at, [same], []),  # the same identity from another application: its own
            build_part(first, at, [same, other], []),  # a retry of the first part's event, and a new one
        ])
        persisted = store_message(message)
        assert sorted((e["event_id"], e["timestamp"]) for e in persisted.new_events) == sorted(
            [(event_id, same["timestamp"]), (event_id, same["timestamp"]), (other["event_id"], other["timestamp"])])

        def stored(application_id: int) -> int:
            return db.session.scalar(select(func.count()).select_from(Event).where(
                Event.application_id == application_id, Event.session_id == uuid.UUID(session_id)))

        assert (stored(first), stored(second)) == (2, 1)
        assert db.session.get(Session, uuid.UUID(session_id)).event_count == 3

        # Stored again (a redelivered group): nothing is new, nothing counts twice.
        assert store_message(message).new_events == []
        assert (stored(first), stored(second)) == (2, 1)
        db.session.expire_all()
        assert db.session.get(Session, uuid.UUID(session_id)).event_count == 3
