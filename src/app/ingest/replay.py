"""Replay recorded refusals that would pass now (after a schema was loosened, or a client fixed).

A refusal is replayed from its raw item, kept whole for that (app/messages.py): the item is checked
again by the same validation as the API's, against the current registry, and an item that passes
goes through the normal ingest path (published with confirms, stored by a worker) with its own
`event_id`, or, if it had none, one derived from the refusal, so replaying twice stores it once.

Time checks apply as of when the item was first received, not as of the replay: a
`future_timestamp` refusal was a clock ahead of the server's at the time, and replaying it a day
later must not store that wrong clock as if it were right. So a future_timestamp refusal stays
refused, and an event's `received_at` is its first arrival.

Not replayable: a body that was never JSON or never a list of items (its 8 KiB excerpt), an item
cut to its excerpt (larger than the errors store keeps whole), an item of no known application.
"""

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from flask import current_app
from sqlalchemy import Select, select, tuple_, update

from app.event_types import current_registry
from app.extensions import db
from app.ingest import json_numbers
from app.ingest.publishing import publish_parts
from app.ingest.validation import BODY_TOO_LARGE, MALFORMED_JSON, UNSUPPORTED_MEDIA_TYPE, validate_event
from app.messages import build_part
from app.models import Rejection
from app.queries.events import RejectionFilters, filter_rejections
from app.queries.pagination import BadCursor, decode_cursor, encode_cursor

REPLAY_LISTING = "replay"
# Refusals of a whole request body (its errors name `_body`, or its headers): never an item.
BODY_KINDS = (MALFORMED_JSON, UNSUPPORTED_MEDIA_TYPE, BODY_TOO_LARGE)
MAX_REPLAY = 1000
ACCEPTED = "accepted"
NOT_REPLAYABLE = "not_replayable"
# What a replay of a refusal is derived from: the same refusal always gives the same event_id.
REPLAY_NAMESPACE = uuid.UUID("5f0c8f39-9c4e-4f55-a8c3-7a5b0f6f2f11")


@dataclass(frozen=True)
class ReplayFilters:
    """Which refusals to replay: as GET /api/v1/errors filters them, or explicit ids."""

    kind: str | None = None
    category: str | None = None
    name: str | None = None
    application: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    ids: tuple[uuid.UUID, ...] | None = None
    replayed: bool | None = None


@dataclass
class ReplayReport:
    dry_run: bool
    matched: int = 0
    passing: int = 0
    still_failing: Counter | None = None
    not_replayable: int = 0
    next_cursor: str | None = None

    def as_dict(self) -> dict:
        return {"dry_run": self.dry_run, "matched": self.matched,
                ("would_pass" if self.dry_run else "replayed"): self.passing,
                "still_failing": dict(self.still_failing or {}), "not_replayable": self.not_replayable,
                "next_cursor": self.next_cursor}


def matching(filters: ReplayFilters) -> Select:
    """The refusals the filters select, oldest first (no limit): the errors list's filters, or ids."""
    statement = filter_rejections(select(Rejection), RejectionFilters(
        kind=filters.kind, application=filters.application, category=filters.category, name=filters.name,
        replayed=filters.replayed, since=filters.since, until=filters.until))
    if filters.ids is not None:
        statement = statement.where(Rejection.id.in_(filters.ids))
    return statement.order_by(Rejection.received_at, Rejection.id)


def replay(filters: ReplayFilters, limit: int, dry_run: bool, cursor: str | None = None) -> ReplayReport:
    """Re-check up to `limit` matching refusals; unless `dry_run`, send those that pass and note the
    outcome on each. BrokerUnavailable (nothing noted) if the broker did not confirm."""
    statement = matching(filters)
    if cursor:
        statement = statement.where(tuple_(Rejection.received_at, Rejection.id) > _position(cursor))
    rows = db.session.scalars(statement.limit(limit + 1)).all()
    report = ReplayReport(dry_run=dry_run, still_failing=Counter())
    if len(rows) > limit:
        rows = rows[:limit]
        report.next_cursor = encode_cursor(REPLAY_LISTING, [rows[-1].received_at.isoformat(), str(rows[-1].id)])
    report.matched = len(rows)
    outcomes: dict[str, list[Rejection]] = {}
    parts = []
    for rejection in rows:
        outcome, event = _check_again(rejection)
        outcomes.setdefault(outcome, []).append(rejection)
        if outcome == ACCEPTED:
            report.passing += 1
            parts.append(build_part(rejection.application_id, rejection.received_at, [event], []))
        elif outcome == NOT_REPLAYABLE:
            report.not_replayable += 1
        else:
            report.still_failing[outcome] += 1
    if dry_run:
        db.session.rollback()
        return report
    if parts:
        publish_parts(parts)  # BrokerUnavailable: nothing noted, the caller answers 503
    replayed_at = datetime.now(UTC)
    for outcome, rejections in outcomes.items():
        db.session.execute(
            update(Rejection)
            .where(tuple_(Rejection.id, Rejection.received_at).in_([(r.id, r.received_at) for r in rejections]))
            .values(replayed_at=replayed_at, replay_outcome=outcome)
            .execution_options(synchronize_session=False)
        )
    db.session.commit()
    return report


def replay_event_id(rejection_id: uuid.UUID) -> str:
    """The event_id a replay gives an item that carried none: the same for every replay of it."""
    return str(uuid.uuid5(REPLAY_NAMESPACE, str(rejection_id)))


def _check_again(rejection: Rejection) -> tuple[str, dict | None]:
    """(ACCEPTED, the event), (the kind it still fails with, None) or (NOT_REPLAYABLE, None)."""
    if rejection.application_id is None:
        return NOT_REPLAYABLE, None
    try:
        item = json_numbers.loads(rejection.raw.encode())
    except orjson.JSONDecodeError:
        return NOT_REPLAYABLE, None  # never JSON, or cut to its excerpt
    if not isinstance(item, dict) or rejection.kind in BODY_KINDS or "_body" in (rejection.errors or {}):
        return NOT_REPLAYABLE, None  # a body refused as a whole, not an item
    if "event_id" not in item:
        item = {**item, "event_id": replay_event_id(rejection.id)}
    config = current_app.config
    verdict = validate_event(item, current_registry(), now=rejection.received_at,
                             max_skew=config["EYE_MAX_CLOCK_SKEW"], strict_types=config["EYE_STRICT_EVENT_TYPES"])
    if not verdict.accepted:
        return verdict.kind, None
    return ACCEPTED, verdict.event


def _position(cursor: str) -> tuple:
    values = decode_cursor(REPLAY_LISTING, cursor)
    try:
        return datetime.fromisoformat(values[0]), uuid.UUID(values[1])
    except (ValueError, IndexError, TypeError):
        raise BadCursor("This cursor does not point into a replay.") from None
