"""The errors store: each refusal recorded once (its id decides), and counted once, worker side."""

import uuid
from datetime import datetime

from sqlalchemy.dialects.postgresql import insert

from app.extensions import db
from app.models import Rejection
from app.storage.arrivals import COUNT_ARRIVALS, arrival_parameters, rejection_counts
from app.storage.database import raw_cursor


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
            "event_id": uuid.UUID(r["event_id"]) if r.get("event_id") else None,
            "category": r.get("category"),
            "name": r.get("name"),
            "errors": r.get("errors") or {},
            "raw": r.get("raw", ""),
        }
        for r in rejections
    ]
    # (received_at is part of the key because it is the partition key; the API sets both at once.)
    new = db.session.execute(
        insert(Rejection).values(rows).on_conflict_do_nothing(index_elements=["id", "received_at"])
        .returning(Rejection.received_at, Rejection.kind, Rejection.category, Rejection.name)
    ).all()
    if new:
        with raw_cursor() as cursor:
            cursor.execute(COUNT_ARRIVALS, arrival_parameters(rejection_counts(new)))
