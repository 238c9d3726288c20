"""Stores one ingest message in one transaction: its events once each, their sessions, the mouse
metrics of the new ones, and the rejections it carries (worker side).

Safe to run twice on the same message: the database's unique keys decide what is new, and only new
events count, all in one transaction.
"""

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.messages import build_message, parts_of, raw_excerpt
from app.storage.database_errors import is_transient
from app.storage.events import add_to_sessions, store_events
from app.storage.mouse import record_mouse_moves
from app.storage.rejections import record_rejections


@dataclass
class PersistedBatch:
    """What one message changed: its new events, and the live messages to send once committed."""

    new_events: list[dict]
    mouse_metrics: list[dict] = field(default_factory=list)


def store_message(message: dict) -> PersistedBatch:
    """Persist one ingest message in one transaction; returns its new events and what to emit.

    A message holds one part per request the API merged into it (see app/messages.py).
    """
    parts = parts_of(message)
    new_by_application = store_events([
        (part["application_id"], datetime.fromisoformat(part["received_at"]), part.get("events", []))
        for part in parts
    ])
    rejections = [rejection for part in parts for rejection in part.get("rejections", [])]
    add_to_sessions(new_by_application)
    new_events = [event for _, events in new_by_application for event in events]
    # Same transaction: only new events count, and a crash before the commit counts none of them.
    mouse_metrics = record_mouse_moves(new_events)
    record_rejections(rejections)
    db.session.commit()
    return PersistedBatch(new_events, mouse_metrics)


PROCESSING_FAILED = "processing_failed"


def record_poison_message(message: dict) -> None:
    """Store what can be stored of a message that failed as a whole; record the rest as errors.

    Each event is tried on its own, so one bad event does not take its batch-mates down with it.
    A passing database problem is raised, not recorded: the task retries the whole message then.
    """
    db.session.rollback()
    for part in parts_of(message):
        _record_rejections_committed(part.get("rejections", []))
        base = {**part, "events": [], "rejections": []}
        for event in part.get("events", []):
            try:
                store_message(build_message([{**base, "events": [event]}]))
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
                        "event_id": event.get("event_id"),
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
