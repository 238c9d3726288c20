"""The data team's reads: events, sessions and rejections, a keyset page at a time.

A page ends at its last row's sort key; the next page asks for rows strictly after it. Sort keys
never change once stored, so walking every page while events keep arriving returns each event that
existed when the walk began exactly once (events arriving meanwhile appear only if they sort after
the current page). Every statement here is shaped to run on one index (see models and
migrations 0001/0002); the plans are checked by tests/integration/test_query_plans.py.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Select, select, tuple_

from app.extensions import db
from app.models import Application, Event, Rejection, Session, SessionApplication
from app.queries.pagination import BadCursor, decode_cursor, encode_cursor

EVENTS_LISTING = "events"
REJECTIONS_LISTING = "errors"


@dataclass(frozen=True)
class EventFilters:
    """Which events to list; None means any. `since`/`until` bound `timestamp`, half-open."""

    session_id: uuid.UUID | None = None
    category: str | None = None
    name: str | None = None
    application: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class RejectionFilters:
    """Which rejections to list; `since`/`until` bound the time received, half-open."""

    kind: str | None = None
    application: str | None = None
    category: str | None = None
    name: str | None = None
    event_id: uuid.UUID | None = None
    replayed: bool | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class Page:
    items: list[dict]
    next_cursor: str | None


def application_name_of(application_id_column):
    """The name of the row's application, as a correlated subquery (NULL if it has none).

    A subquery rather than a join, so the planner picks the scan of the listed table on its own
    merits: a join lets it drive the scan from the (small) applications table instead, through
    the per-application index, and sort afterwards.
    """
    return (
        select(Application.name).where(Application.id == application_id_column)
        .scalar_subquery().label("application")
    )


def application_id_of(name: str):
    """The id of the application named `name`, as a scalar subquery.

    A subquery rather than a join: PostgreSQL then evaluates it once and walks the
    (application_id, timestamp, …) index in order, instead of sorting the joined rows.
    """
    return select(Application.id).where(Application.name == name).scalar_subquery()


# --- Events ---------------------------------------------------------------------------------

EVENT_ORDER = (Event.timestamp, Event.received_at, Event.id)


def events_query(filters: EventFilters, limit: int, after: tuple | None = None) -> Select:
    """The statement for one page of events: `limit` rows after the sort key `after`."""
    statement = select(
        Event.id, Event.event_id, Event.session_id, application_name_of(Event.application_id),
        Event.category, Event.name, Event.data, Event.timestamp, Event.received_at,
    )
    if filters.session_id is not None:
        statement = statement.where(Event.session_id == filters.session_id)
    if filters.category is not None:
        statement = statement.where(Event.category == filters.category)
    if filters.name is not None:
        statement = statement.where(Event.name == filters.name)
    if filters.application is not None:
        statement = statement.where(Event.application_id == application_id_of(filters.application))
    if filters.since is not None:
        statement = statement.where(Event.timestamp >= filters.since)
    if filters.until is not None:
        statement = statement.where(Event.timestamp < filters.until)
    if after is not None:
        # A row-value comparison, which PostgreSQL matches to the index.
        statement = statement.where(tuple_(*EVENT_ORDER) > after)
    return statement.order_by(*EVENT_ORDER).limit(limit)


def list_events(filters: EventFilters, limit: int, cursor: str | None = None) -> Page:
    """One page of events in order (timestamp, then arrival); BadCursor if `cursor` is not ours."""
    after = _event_position(decode_cursor(EVENTS_LISTING, cursor)) if cursor else None
    if filters.session_id is not None:
        filters = within_session_span(filters)
        if filters is None:
            return Page(items=[], next_cursor=None)
    rows = db.session.execute(events_query(filters, limit + 1, after)).mappings().all()
    return _page(rows, limit, EVENTS_LISTING, _event_sort_key)


def within_session_span(filters: EventFilters) -> EventFilters | None:
    """The filters, with `since`/`until` narrowed to the session's first and last event times.

    Events are partitioned by timestamp: with the span as constants, the planner reads only the
    partitions the session has events in. None if the session has no stored event.
    """
    span = db.session.execute(
        select(Session.first_event_at, Session.last_event_at).where(Session.session_id == filters.session_id)
    ).first()
    if span is None:
        return None
    first, last = span
    since = max(filters.since, first) if filters.since else first
    until_last = last + timedelta(microseconds=1)  # `until` is exclusive
    until = min(filters.until, until_last) if filters.until else until_last
    return replace(filters, since=since, until=until)


def _event_sort_key(row) -> list:
    # isoformat keeps the microseconds, so the next page starts exactly after this row.
    return [row["timestamp"].isoformat(), row["received_at"].isoformat(), row["id"]]


def _event_position(values: list) -> tuple:
    if len(values) != 3 or not isinstance(values[2], int):
        raise BadCursor("This cursor does not point into an event listing.")
    return (_instant(values[0]), _instant(values[1]), values[2])


# --- Sessions -------------------------------------------------------------------------------


def session_summary(session_id: uuid.UUID) -> dict | None:
    """A session's span, event count and applications; None if no event of it is stored."""
    session = db.session.get(Session, session_id)
    if session is None:
        return None
    applications = db.session.scalars(
        select(Application.name)
        .join(SessionApplication, SessionApplication.application_id == Application.id)
        .where(SessionApplication.session_id == session_id)
        .order_by(Application.name)
    ).all()
    return {
        "session_id": session.session_id,
        "first_event_at": session.first_event_at,
        "last_event_at": session.last_event_at,
        "event_count": session.event_count,
        "applications": list(applications),
    }


def session_exists(session_id: uuid.UUID) -> bool:
    return db.session.get(Session, session_id) is not None


# --- Rejections (the errors store) ----------------------------------------------------------

REJECTION_ORDER = (Rejection.received_at, Rejection.id)


def rejections_query(filters: RejectionFilters, limit: int, after: tuple | None = None) -> Select:
    """The statement for one page of rejections, in the order they were received."""
    statement = filter_rejections(select(
        Rejection.id, Rejection.received_at, application_name_of(Rejection.application_id), Rejection.kind,
        Rejection.event_id, Rejection.category, Rejection.name, Rejection.errors, Rejection.raw,
        Rejection.replayed_at, Rejection.replay_outcome,
    ), filters)
    if after is not None:
        statement = statement.where(tuple_(*REJECTION_ORDER) > after)
    return statement.order_by(*REJECTION_ORDER).limit(limit)


def filter_rejections(statement: Select, filters: RejectionFilters) -> Select:
    """`statement` restricted to the rejections `filters` select (the errors list's, and a replay's)."""
    if filters.event_id is not None:
        statement = statement.where(Rejection.event_id == filters.event_id)
    if filters.category is not None:
        statement = statement.where(Rejection.category == filters.category)
    if filters.name is not None:
        statement = statement.where(Rejection.name == filters.name)
    if filters.replayed is not None:
        statement = statement.where(Rejection.replayed_at.is_not(None) if filters.replayed
                                    else Rejection.replayed_at.is_(None))
    if filters.kind is not None:
        statement = statement.where(Rejection.kind == filters.kind)
    if filters.application is not None:
        statement = statement.where(Rejection.application_id == application_id_of(filters.application))
    if filters.since is not None:
        statement = statement.where(Rejection.received_at >= filters.since)
    if filters.until is not None:
        statement = statement.where(Rejection.received_at < filters.until)
    return statement


def list_rejections(filters: RejectionFilters, limit: int, cursor: str | None = None) -> Page:
    """One page of rejections, oldest first; BadCursor if `cursor` is not ours."""
    after = _rejection_position(decode_cursor(REJECTIONS_LISTING, cursor)) if cursor else None
    rows = db.session.execute(rejections_query(filters, limit + 1, after)).mappings().all()
    return _page(rows, limit, REJECTIONS_LISTING, lambda row: [row["received_at"].isoformat(), str(row["id"])])


def _rejection_position(values: list) -> tuple:
    if len(values) != 2 or not isinstance(values[1], str):
        raise BadCursor("This cursor does not point into the errors listing.")
    try:
        return (_instant(values[0]), uuid.UUID(values[1]))
    except ValueError:
        raise BadCursor("This cursor does not point into the errors listing.") from None


# --- Shared ---------------------------------------------------------------------------------


def _page(rows, limit: int, listing: str, sort_key: Callable) -> Page:
    # One row more than asked says whether a next page exists, so the last page has no cursor.
    items = [dict(row) for row in rows[:limit]]
    next_cursor = encode_cursor(listing, sort_key(items[-1])) if len(rows) > limit else None
    return Page(items=items, next_cursor=next_cursor)


def _instant(value) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise BadCursor("This cursor's position is not a time.") from None
    if parsed.tzinfo is None:
        raise BadCursor("This cursor's position is not a time.")
    return parsed


# --- Where is my event? ---------------------------------------------------------------------


def event_status(event_id: uuid.UUID) -> dict | None:
    """Every stored event with this id (one per application and timestamp) and every refusal that
    carried it, oldest first; None when nothing is known of it.

    The events' key leads with the application: the lookup probes it once per application and
    partition, with no index of its own on the insert path.
    """
    stored = db.session.execute(
        select(application_name_of(Event.application_id), Event.session_id, Event.category, Event.name,
               Event.timestamp, Event.received_at)
        .where(Event.application_id.in_(select(Application.id)), Event.event_id == event_id)
        .order_by(Event.timestamp, Event.received_at)
    ).mappings().all()
    refused = db.session.execute(
        select(Rejection.id, application_name_of(Rejection.application_id), Rejection.kind,
               Rejection.category, Rejection.name, Rejection.errors, Rejection.received_at)
        .where(Rejection.event_id == event_id)
        .order_by(Rejection.received_at, Rejection.id)
    ).mappings().all()
    if not stored and not refused:
        return None
    return {"event_id": event_id, "stored": [dict(row) for row in stored], "refused": [dict(row) for row in refused]}
