"""The errors store: each refusal recorded once (its id decides), worker side."""

import uuid
from datetime import datetime

from sqlalchemy.dialects.postgresql import insert

from app.extensions import db
from app.models import Rejection


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
    db.session.execute(insert(Rejection).on_conflict_do_nothing(index_elements=["id"]), rows)
