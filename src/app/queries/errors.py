"""The errors monitor's summary: what was rejected, and which stored events no schema checks.

It stays cheap however much is stored. arrival_counts (kept by the workers: stored events and
refusals per minute of arrival, outcome and type) answers every whole minute; the raw tables
answer only what a rollup cannot: the refusals of a window, read from the window's partitions of
`rejections` (partitioned by the time received, the summary's own axis), and the stored events of
the partial minutes at a window's edges, through the events' received_at index (events are
partitioned by their own timestamp, which says nothing about when they arrived). Without a window
the summary reads arrival_counts alone.
"""

from datetime import datetime, timedelta

from sqlalchemy import BigInteger, Select, and_, cast, func, literal_column, not_, or_, select, union_all

from app.event_types import EventTypeRegistry, current_registry
from app.extensions import db
from app.models import ArrivalCounts, Event, Rejection
from app.storage.arrivals import STORED


def error_summary(since: datetime | None = None, until: datetime | None = None,
                  types: EventTypeRegistry | None = None) -> dict:
    """Rejections by kind and by event type, and unregistered stored events, received in [since, until)."""
    if since is None and until is None:
        by_kind, by_type = _rejections_counted()
    else:
        by_kind, by_type = _rejections_between(since, until)
    return {
        "by_kind": dict(by_kind),
        "by_type": [dict(row) for row in by_type],
        "unregistered": unregistered_events(since, until, types),
    }


def _rejections_counted() -> tuple[list, list]:
    """Every recorded refusal, by kind and by type, from arrival_counts."""
    refused = ArrivalCounts.outcome != STORED
    total = cast(func.sum(ArrivalCounts.count), BigInteger).label("count")
    by_kind = db.session.execute(
        select(ArrivalCounts.outcome, total).where(refused)
        .group_by(ArrivalCounts.outcome).order_by(ArrivalCounts.outcome)
    ).all()
    by_type = db.session.execute(
        select(ArrivalCounts.category, ArrivalCounts.name, ArrivalCounts.outcome.label("kind"), total)
        # A body that could not be read names no event type: it counts in by_kind only.
        .where(refused, ArrivalCounts.category != "", ArrivalCounts.name != "")
        .group_by(ArrivalCounts.category, ArrivalCounts.name, ArrivalCounts.outcome)
        .order_by(total.desc(), ArrivalCounts.category, ArrivalCounts.name, ArrivalCounts.outcome)
    ).mappings().all()
    return by_kind, by_type


def _rejections_between(since: datetime | None, until: datetime | None) -> tuple[list, list]:
    """The refusals received in [since, until), by kind and by type, from the window's partitions."""
    in_window = _received_between(Rejection.received_at, since, until)
    by_kind = db.session.execute(
        select(Rejection.kind, func.count()).where(*in_window).group_by(Rejection.kind).order_by(Rejection.kind)
    ).all()
    count = func.count().label("count")
    by_type = db.session.execute(
        select(Rejection.category, Rejection.name, Rejection.kind, count)
        .where(*in_window, Rejection.category.is_not(None), Rejection.name.is_not(None))
        .group_by(Rejection.category, Rejection.name, Rejection.kind)
        .order_by(count.desc(), Rejection.category, Rejection.name, Rejection.kind)
    ).mappings().all()
    return by_kind, by_type


def unregistered_events(since: datetime | None, until: datetime | None,
                        types: EventTypeRegistry | None = None) -> list[dict]:
    """Stored events received in [since, until) whose (category, name) has no schema, per type."""
    return [dict(row) for row in db.session.execute(unregistered_events_query(since, until, types)).mappings()]


def unregistered_events_query(since: datetime | None, until: datetime | None,
                              types: EventTypeRegistry | None = None) -> Select:
    """Whole minutes of [since, until) from arrival_counts, the partial minutes at its edges from events."""
    types = types or current_registry()
    first_whole = _next_minute(since) if since is not None else None
    last_whole = until.replace(second=0, microsecond=0) if until is not None else None
    parts = [_arrivals_between(first_whole, last_whole, types)]
    if since is not None and first_whole > since:
        edge_end = min(first_whole, until) if until is not None else first_whole
        parts.append(_events_received_between(since, edge_end, types))
    if last_whole is not None and last_whole < until and (first_whole is None or last_whole >= first_whole):
        parts.append(_events_received_between(last_whole, until, types))
    counted = union_all(*parts).subquery()
    count = func.sum(counted.c.count).label("count")
    return (
        select(counted.c.category, counted.c.name, cast(count, BigInteger).label("count"))
        .group_by(counted.c.category, counted.c.name)
        .having(func.sum(counted.c.count) > 0)
        .order_by(count.desc(), counted.c.category, counted.c.name)
    )


def _arrivals_between(first: datetime | None, end: datetime | None, types: EventTypeRegistry) -> Select:
    conditions = [ArrivalCounts.outcome == STORED, *_received_between(ArrivalCounts.minute, first, end)]
    return (
        select(ArrivalCounts.category, ArrivalCounts.name, ArrivalCounts.count.label("count"))
        .where(*conditions, *_unregistered(ArrivalCounts, types))
    )


def _events_received_between(start: datetime, end: datetime, types: EventTypeRegistry) -> Select:
    return (
        select(Event.category, Event.name, literal_column("1").label("count"))
        .where(Event.received_at >= start, Event.received_at < end, *_unregistered(Event, types))
    )


def _unregistered(table, types: EventTypeRegistry) -> list:
    registered = [and_(table.category == category, table.name == name) for (category, name), _ in types]
    # Plain OR of pairs: the registry is small, and each pair matches the index.
    return [not_(or_(*registered))] if registered else []


def _next_minute(instant: datetime) -> datetime:
    whole = instant.replace(second=0, microsecond=0)
    return whole if whole == instant else whole + timedelta(minutes=1)


def _received_between(column, since: datetime | None, until: datetime | None) -> list:
    conditions = []
    if since is not None:
        conditions.append(column >= since)
    if until is not None:
        conditions.append(column < until)
    return conditions
