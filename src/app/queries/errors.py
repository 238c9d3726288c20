"""The errors monitor's summary: what was rejected, and which stored events no schema checks."""

from datetime import datetime

from sqlalchemy import Select, and_, func, not_, or_, select

from app.event_types import EventTypeRegistry, current_registry
from app.extensions import db
from app.models import Event, Rejection


def error_summary(since: datetime | None = None, until: datetime | None = None,
                  types: EventTypeRegistry | None = None) -> dict:
    """Rejections by kind and by event type, and unregistered stored events, received in [since, until)."""
    in_window = _received_between(Rejection.received_at, since, until)
    by_kind = db.session.execute(
        select(Rejection.kind, func.count()).where(*in_window).group_by(Rejection.kind).order_by(Rejection.kind)
    ).all()
    count = func.count().label("count")
    by_type = db.session.execute(
        select(Rejection.category, Rejection.name, Rejection.kind, count)
        # A body that could not be read names no event type: it counts in by_kind only.
        .where(*in_window, Rejection.category.is_not(None), Rejection.name.is_not(None))
        .group_by(Rejection.category, Rejection.name, Rejection.kind)
        .order_by(count.desc(), Rejection.category, Rejection.name, Rejection.kind)
    ).mappings().all()
    return {
        "by_kind": dict(by_kind),
        "by_type": [dict(row) for row in by_type],
        "unregistered": unregistered_events(since, until, types),
    }


def unregistered_events(since: datetime | None, until: datetime | None,
                        types: EventTypeRegistry | None = None) -> list[dict]:
    """Stored events received in [since, until) whose (category, name) has no schema, per type."""
    return [dict(row) for row in db.session.execute(unregistered_events_query(since, until, types)).mappings()]


def unregistered_events_query(since: datetime | None, until: datetime | None,
                              types: EventTypeRegistry | None = None) -> Select:
    registered = [and_(Event.category == category, Event.name == name)
                  for (category, name), _ in (types or current_registry())]
    count = func.count().label("count")
    statement = (
        select(Event.category, Event.name, count)
        .where(*_received_between(Event.received_at, since, until))
        .group_by(Event.category, Event.name)
        .order_by(count.desc(), Event.category, Event.name)
    )
    if registered:
        # Plain OR of pairs: the registry is small, and each pair matches the index.
        statement = statement.where(not_(or_(*registered)))
    return statement


def _received_between(column, since: datetime | None, until: datetime | None) -> list:
    conditions = []
    if since is not None:
        conditions.append(column >= since)
    if until is not None:
        conditions.append(column < until)
    return conditions
