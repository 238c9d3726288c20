"""Stores what the API accepted: events once each, their sessions, and the rejections.

Safe to run twice on the same message: the database's unique keys decide what is new, and only
new events count towards their session, all in one transaction.
"""

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Event, Rejection, Session, SessionApplication
from app.services import bulk_postgres
from app.services.database_errors import is_transient
from app.services.ingest import raw_excerpt
from app.services.mouse_metrics import record_mouse_moves


def _insert(model):
    dialect = db.session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(model)


@dataclass
class PersistedBatch:
    """What one message changed: its new events, and the live messages to send once committed."""

    new_events: list[dict]
    mouse_metrics: list[dict] = field(default_factory=list)


def persist_batch(message: dict) -> PersistedBatch:
    """Persist one ingest message in one transaction; returns its new events and what to emit.

    A message holds one part per request the API merged into it (see services/publishing.py).
    """
    new_by_application: list[tuple[int, list[dict]]] = []
    rejections: list[dict] = []
    for part in message_parts(message):
        received_at = datetime.fromisoformat(part["received_at"])
        new_events = _insert_events(part["application_id"], received_at, part.get("events", []))
        new_by_application.append((part["application_id"], new_events))
        rejections += part.get("rejections", [])
    _upsert_sessions(new_by_application)
    new_events = [event for _, events in new_by_application for event in events]
    # Same transaction: only new events count, and a crash before the commit counts none of them.
    mouse_metrics = record_mouse_moves(new_events)
    record_rejections(rejections)
    db.session.commit()
    return PersistedBatch(new_events, mouse_metrics)


def message_parts(message: dict) -> list[dict]:
    """The parts of a message (a message from before parts existed is one part)."""
    return message["parts"] if "parts" in message else [message]


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
    if _is_postgres():
        inserted = bulk_postgres.insert_events(rows)
    else:
        # RETURNING keeps SQLAlchemy on its batched path (sqlalchemy#6581) and tells us which
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


def _upsert_sessions(new_by_application: list[tuple[int, list[dict]]]) -> None:
    per_session: dict[str, list[datetime]] = defaultdict(list)
    seen_by: set[tuple[str, int]] = set()
    for application_id, events in new_by_application:
        for event in events:
            per_session[event["session_id"]].append(event["timestamp_dt"])
            seen_by.add((event["session_id"], application_id))
    if not per_session:
        return
    # Sorted: every worker locks session rows in the same order, so two never deadlock on them.
    rows = [
        {
            "session_id": uuid.UUID(session_id),
            "first_event_at": min(times),
            "last_event_at": max(times),
            "event_count": len(times),
        }
        for session_id, times in sorted(per_session.items())
    ]
    pairs = sorted(seen_by)
    if _is_postgres():
        bulk_postgres.record_sessions(rows, pairs)
        return
    insert = _insert(Session.__table__).values(rows)
    excluded = insert.excluded
    # One atomic statement per batch: concurrent writers on one session add up, never overwrite.
    db.session.execute(
        insert.on_conflict_do_update(
            index_elements=["session_id"],
            set_={
                "first_event_at": func.min(Session.first_event_at, excluded.first_event_at),
                "last_event_at": func.max(Session.last_event_at, excluded.last_event_at),
                "event_count": Session.event_count + excluded.event_count,
            },
        )
    )
    db.session.execute(
        _insert(SessionApplication.__table__).values(
            [{"session_id": uuid.UUID(session_id), "application_id": application_id} for session_id, application_id in pairs]
        ).on_conflict_do_nothing()
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


def record_poison_message(message: dict) -> None:
    """Store what can be stored of a message that failed as a whole; record the rest as errors.

    Each event is tried on its own, so one bad event does not take its batch-mates down with it.
    A passing database problem is raised, not recorded: the task retries the whole message then.
    """
    db.session.rollback()
    for part in message_parts(message):
        _record_rejections_committed(part.get("rejections", []))
        base = {**part, "events": [], "rejections": []}
        for event in part.get("events", []):
            try:
                persist_batch({**base, "events": [event]})
            except Exception as event_exc:
                db.session.rollback()
                if is_transient(event_exc):
                    raise
                _record_rejections_committed([
                    {
                        # Derived from the event, so recording the same poison twice stores it once.
                        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"poison:{part['application_id']}:{event['event_id']}")),
                        "application_id": part.get("application_id"),
                        "received_at": part["received_at"],
                        "kind": PROCESSING_FAILED,
                        "category": event.get("category"),
                        "name": event.get("name"),
                        "errors": {"_schema": [f"The database refused this event: {type(event_exc).__name__}."]},
                        "raw": raw_excerpt(event),
                    }
                ])


def _record_rejections_committed(rejections: list[dict]) -> None:
    try:
        record_rejections(rejections)
        db.session.commit()
    except IntegrityError:
        # The application is gone (or never was): keep the record, without the broken reference.
        db.session.rollback()
        record_rejections([{**r, "application_id": None} for r in rejections])
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
