"""Ingest (web side): validate incoming events at the door, publish the good ones, record the bad ones."""

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app

from app.event_types import current_registry
from app.identity.keys import Principal
from app.ingest.json_numbers import as_sent
from app.ingest.publishing import BrokerUnavailable, publish_part
from app.ingest.validation import Verdict, validate_event
from app.messages import RAW_ITEM_LIMIT, build_part, rejection_record
from app.observability.metrics import EVENTS_ACCEPTED, EVENTS_REJECTED, PUBLISH_SECONDS

log = logging.getLogger(__name__)


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
    """Validate each item, then publish the accepted ones and the rejections as one part of a message.

    Raises BrokerUnavailable when the broker did not confirm: nothing is accepted then.
    """
    config = current_app.config
    received_at = datetime.now(UTC)
    registry = current_registry()
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
    part = build_part(
        principal.application_id, received_at,
        [v.event for v in verdicts if v.accepted],
        [
            rejection_record(principal.application_id, v.kind, v.errors, item, received_at, v.category, v.name,
                             default=as_sent, whole_up_to=RAW_ITEM_LIMIT)
            for v, item in zip(verdicts, items, strict=True)
            if not v.accepted
        ],
    )
    started = time.perf_counter()
    try:
        publish_part(part)
    except BrokerUnavailable:
        if part["events"]:
            raise
        # Nothing was accepted: the client's answer is its 4xx; only the record is missing.
        log.warning("could not record %d rejections: broker unavailable", len(part["rejections"]))
    else:
        PUBLISH_SECONDS.observe(time.perf_counter() - started)
    if part["events"]:
        EVENTS_ACCEPTED.labels(application=principal.application_name).inc(len(part["events"]))
    for rejection in part["rejections"]:
        EVENTS_REJECTED.labels(kind=rejection["kind"]).inc()
    return IngestResult(verdicts)


def record_request_rejection(principal: Principal | None, kind: str, errors: dict, raw) -> None:
    """Record a request that could not be read at all (bad JSON, too large, wrong type).

    The client's answer is the 4xx itself, so a broker outage here is logged, not raised.
    """
    received_at = datetime.now(UTC)
    EVENTS_REJECTED.labels(kind=kind).inc()
    application_id = principal.application_id if principal else None
    part = build_part(application_id, received_at, [],
                      [rejection_record(application_id, kind, errors, raw, received_at, default=as_sent)])
    try:
        publish_part(part)
    except BrokerUnavailable:
        log.warning("could not record a %s rejection: broker unavailable", kind)
