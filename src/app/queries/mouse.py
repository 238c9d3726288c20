"""Reads a session's mouse metric series back, a page at a time."""

import uuid

from sqlalchemy import select

from app.extensions import db
from app.models import MouseMetric, MouseTotals, Session
from app.mouse_geometry import PUBLIC_FIELDS, public_metric
from app.queries.pagination import BadCursor, decode_cursor, encode_cursor


class UnknownSession(Exception):
    """No event and no mouse data was ever stored for this session."""


def metrics_page(session_id: uuid.UUID, limit: int, cursor: str | None) -> dict:
    """One page of a session's metric series in processing order; BadCursor, UnknownSession."""
    kind = f"mouse-metrics:{session_id}"
    after = _cursor_id(kind, cursor) if cursor else 0
    span = db.session.execute(
        select(MouseTotals.created_at, MouseTotals.updated_at).where(MouseTotals.session_id == session_id)
    ).first()
    rows = []
    if span is not None:
        # The series is partitioned by computed_at; its rows lie within the totals' span (they are
        # written in the same transactions), so only those partitions are read.
        rows = db.session.execute(
            select(MouseMetric.id, *(getattr(MouseMetric, name) for name in PUBLIC_FIELDS))
            .where(MouseMetric.session_id == session_id, MouseMetric.id > after,
                   MouseMetric.computed_at >= span.created_at, MouseMetric.computed_at <= span.updated_at)
            .order_by(MouseMetric.id)
            .limit(limit + 1)
        ).all()
    if not rows and not cursor and not _session_known(session_id):
        raise UnknownSession(str(session_id))
    page = rows[:limit]
    next_cursor = encode_cursor(kind, [page[-1].id]) if len(rows) > limit else None
    return {"items": [public_metric(row._mapping) for row in page], "next_cursor": next_cursor}


def _cursor_id(kind: str, cursor: str) -> int:
    after = decode_cursor(kind, cursor)
    if len(after) != 1 or not isinstance(after[0], int):
        raise BadCursor("This cursor belongs to another listing.")
    return after[0]


def _session_known(session_id: uuid.UUID) -> bool:
    return (
        db.session.get(Session, session_id) is not None
        or db.session.get(MouseTotals, session_id) is not None
    )
