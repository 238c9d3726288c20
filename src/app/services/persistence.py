"""Stores what the API accepted: events once each, their sessions, and the rejections.

Safe to run twice on the same message: the database's unique keys decide what is new, and only
new events count towards their session, all in one transaction.
"""

import uuid
from collections import defaultdict
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.models import Event, Rejection, Session, SessionApplication


def _insert(model):
    dialect = db.session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(model)


def persist_batch(message: dict) -> list[dict]:
    """Persist one ingest message; returns the events that were new (not seen before)."""
    application_id = message["application_id"]
    received_at = datetime.fromisoformat(message["received_at"])
    new_events = _insert_events(application_id, received_at, message.get("events", []))
    _upsert_sessions(application_id, new_events)
    record_rejections(message.get("rejections", []))
    db.session.commit()
    return new_events


def _insert_events(application_id: int, received_at: datetime, events: list[dict]) -> list[dict]:
    if not events:
        return []
    rows = [
        {
            "application_id": application_id,
            "event_id": uuid.UUID(e["event_id"]),
            "session_id": uuid.UUID(e["session_id"]),
            "category": e["category"],
            "name": e["name"],
            "data": e["data"],
            "timestamp": datetime.fromisoformat(e["timestamp"]),
            "received_at": received_at,
        }
        for e in events
    ]
    # RETURNING keeps SQLAlchemy on its fast batched path (sqlalchemy#6581) and tells us which
    # rows are new: a redelivered message inserts nothing and so counts nothing twice.
    statement = (
        _insert(Event)
        .on_conflict_do_nothing(index_elements=["application_id", "event_id"])
        .returning(Event.event_id)
    )
    inserted = {row[0] for row in db.session.execute(statement, rows)}
    new = []
    for row, event in zip(rows, events, strict=True):
        if row["event_id"] in inserted:
            inserted.discard(row["event_id"])  # the same id twice in one batch is one event
            new.append({**event, "timestamp_dt": row["timestamp"]})
    return new


def _upsert_sessions(application_id: int, new_events: list[dict]) -> None:
    per_session: dict[str, list[datetime]] = defaultdict(list)
    for event in new_events:
        per_session[event["session_id"]].append(event["timestamp_dt"])
    if not per_session:
        return
    rows = [
        {
            "session_id": uuid.UUID(session_id),
            "first_event_at": min(times),
            "last_event_at": max(times),
            "event_count": len(times),
        }
        for session_id, times in sorted(per_session.items())  # sorted: a stable lock order
    ]
    insert = _insert(Session)
    excluded = insert.excluded
    # One atomic statement per batch: concurrent workers on one session add up, never overwrite.
    db.session.execute(
        insert.on_conflict_do_update(
            index_elements=["session_id"],
            set_={
                "first_event_at": func.least(Session.first_event_at, excluded.first_event_at)
                if _is_postgres() else func.min(Session.first_event_at, excluded.first_event_at),
                "last_event_at": func.greatest(Session.last_event_at, excluded.last_event_at)
                if _is_postgres() else func.max(Session.last_event_at, excluded.last_event_at),
                "event_count": Session.event_count + excluded.event_count,
            },
        ),
        rows,
    )
    db.session.execute(
        _insert(SessionApplication).on_conflict_do_nothing(),
        [{"session_id": r["session_id"], "application_id": application_id} for r in rows],
    )


def _is_postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def record_rejections(rejections: list[dict]) -> None:
    """Store rejections in the errors store; one recorded twice is stored once (its id decides)."""
    if not rejections:
        return
    rows = [
        {
            "id": uuid.UUID(r["id"]),
            "received_at": datetime.fromisoformat(r["received_at"]),
            "application_id": r.get("application_id"),
            "kind": r["kind"],
            "category": r.get("category"),
            "name": r.get("name"),
            "errors": r.get("errors") or {},
            "raw": r.get("raw", ""),
        }
        for r in rejections
    ]
    db.session.execute(_insert(Rejection).on_conflict_do_nothing(index_elements=["id"]), rows)


PROCESSING_FAILED = "processing_failed"


def record_poison_message(message: dict, exc: Exception) -> None:
    """Store what can be stored of a message that failed as a whole; record the rest as errors.

    Each event is tried on its own, so one bad event does not take its batch-mates down with it.
    """
    from app.services.ingest import raw_excerpt

    db.session.rollback()
    base = {**message, "events": [], "rejections": []}
    record_rejections_safely(message.get("rejections", []))
    for event in message.get("events", []):
        try:
            persist_batch({**base, "events": [event]})
        except Exception as event_exc:  # the database refused this one event
            db.session.rollback()
            record_rejections_safely([
                {
                    # Derived from the event, so recording the same poison twice stores it once.
                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"poison:{message['application_id']}:{event['event_id']}")),
                    "application_id": message.get("application_id"),
                    "received_at": message["received_at"],
                    "kind": PROCESSING_FAILED,
                    "category": event.get("category"),
                    "name": event.get("name"),
                    "errors": {"_schema": [f"The database refused this event: {type(event_exc).__name__}."]},
                    "raw": raw_excerpt(event),
                }
            ])


def record_rejections_safely(rejections: list[dict]) -> None:
    try:
        record_rejections(rejections)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
