"""Ingest: validate incoming events at the door, publish the good ones, record the bad ones."""

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app

from app.event_types import registry
from app.observability.metrics import EVENTS_ACCEPTED, EVENTS_REJECTED, PUBLISH_SECONDS
from app.services.event_validation import Verdict, validate_event
from app.services.json_numbers import dumps_as_sent
from app.services.keys import Principal
from app.services.publishing import BrokerUnavailable, publish_part

log = logging.getLogger(__name__)

RAW_LIMIT = 8 * 1024


@dataclass
class IngestResult:
    verdicts: list[Verdict]

    @property
    def event_ids(self) -> list[str]:
        return [v.event["event_id"] for v in self.verdicts if v.accepted]

    @property
    def rejected(self) -> list[dict]:
        return [
            {"index": i, "kind": v.kind, "errors": v.errors}
            for i, v in enumerate(self.verdicts)
            if not v.accepted
        ]


class NotAllowed(Exception):
    """The principal may not send this event (a dashboard token outside its session or type)."""


def raw_excerpt(raw) -> str:
    """The raw item as text for the errors store: at most 8 KiB, without NUL characters."""
    if isinstance(raw, bytes):
        text = raw[:RAW_LIMIT].decode("utf-8", errors="replace")
    else:
        try:
            text = dumps_as_sent(raw).decode()
        except TypeError:
            text = repr(raw)
    # PostgreSQL's text cannot hold NUL; keep it visible rather than failing the worker.
    return text[:RAW_LIMIT].replace("\x00", "\\u0000")


def rejection_record(principal: Principal | None, kind: str, errors: dict, raw, received_at: datetime,
                     category: str | None = None, name: str | None = None) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "application_id": principal.application_id if principal else None,
        "received_at": received_at.isoformat(),
        "kind": kind,
        "category": category,
        "name": name,
        "errors": errors,
        "raw": raw_excerpt(raw),
    }


def check_allowed(principal: Principal, items: list) -> None:
    """A dashboard token may only send `mouse / move` for its own session."""
    if principal.session_id is None:
        return
    for item in items:
        if not isinstance(item, dict):
            continue
        if item.get("session_id") != principal.session_id or (
            (item.get("category"), item.get("name")) != principal.only_event_type
        ):
            raise NotAllowed("This token may only send mouse / move events for its own session.")


def ingest_events(principal: Principal, items: list) -> IngestResult:
    """Validate each item, then publish the accepted ones and the rejections in one message.

    Raises BrokerUnavailable when the broker did not confirm: nothing is accepted then.
    """
    config = current_app.config
    received_at = datetime.now(UTC)
    verdicts = [
        validate_event(
            item,
            registry,
            now=received_at,
            max_skew=config["EYE_MAX_CLOCK_SKEW"],
            strict_types=config["EYE_STRICT_EVENT_TYPES"],
        )
        for item in items
    ]
    message = {
        "application_id": principal.application_id,
        "received_at": received_at.isoformat(),
        "events": [v.event for v in verdicts if v.accepted],
        "rejections": [
            rejection_record(principal, v.kind, v.errors, item, received_at, v.category, v.name)
            for v, item in zip(verdicts, items, strict=True)
            if not v.accepted
        ],
    }
    started = time.perf_counter()
    try:
        publish_part(message)
    except BrokerUnavailable:
        if message["events"]:
            raise
        # Nothing was accepted: the client's answer is its 4xx; only the record is missing.
        log.warning("could not record %d rejections: broker unavailable", len(message["rejections"]))
    else:
        PUBLISH_SECONDS.observe(time.perf_counter() - started)
    if message["events"]:
        EVENTS_ACCEPTED.labels(application=principal.application_name).inc(len(message["events"]))
    for rejection in message["rejections"]:
        EVENTS_REJECTED.labels(kind=rejection["kind"]).inc()
    return IngestResult(verdicts)


def record_request_rejection(principal: Principal | None, kind: str, errors: dict, raw) -> None:
    """Record a request that could not be read at all (bad JSON, too large, wrong type).

    The client's answer is the 4xx itself, so a broker outage here is logged, not raised.
    """
    received_at = datetime.now(UTC)
    EVENTS_REJECTED.labels(kind=kind).inc()
    message = {
        "application_id": principal.application_id if principal else None,
        "received_at": received_at.isoformat(),
        "events": [],
        "rejections": [rejection_record(principal, kind, errors, raw, received_at)],
    }
    try:
        publish_part(message)
    except BrokerUnavailable:
        log.warning("could not record a %s rejection: broker unavailable", kind)
