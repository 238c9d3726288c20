"""Checks one incoming event against the envelope and the event-type registry."""

import functools
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from app.event_types import EventTypeRegistry
from app.event_types.json_schema import compile_fast_check
from app.ingest.json_numbers import string_keys, unencodable_errors
from app.timestamps import utc_instant

MAX_DATA_BYTES = 32 * 1024
MAX_DEPTH = 32

# Contract kinds of rejection.
MALFORMED_JSON = "malformed_json"
INVALID_EVENT = "invalid_event"
INVALID_PAYLOAD = "invalid_payload"
FUTURE_TIMESTAMP = "future_timestamp"
UNKNOWN_EVENT_TYPE = "unknown_event_type"
BODY_TOO_LARGE = "body_too_large"
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"

_HAS_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def event_instant(value) -> datetime | None:
    """The instant an event's `timestamp` names, in UTC; None if it names none."""
    if not isinstance(value, str) or not _HAS_TIME.match(value):
        return None
    try:
        return utc_instant(value)
    except ValueError:
        return None


class EventTimestamp(fields.Field):
    """ISO 8601 with `T` or a space; no offset means UTC."""

    default_error_messages = {"invalid": "Not an ISO 8601 date-time (e.g. 2021-01-01 09:15:27.243860)."}

    def _deserialize(self, value, attr, data, **kwargs):
        instant = event_instant(value)
        if instant is None:
            raise self.make_error("invalid")
        return instant

    def _serialize(self, value, attr, obj, **kwargs):
        return value.isoformat() if value else None


class EventEnvelope(Schema):
    """The fields every event has, whatever its type."""

    class Meta:
        unknown = RAISE

    event_id = fields.UUID(metadata={"description": "Client-made idempotency key: a retry re-sends the same "
                                                    "event_id and timestamp and is stored once"})
    session_id = fields.UUID(required=True)
    category = fields.String(required=True, validate=validate.Length(min=1, max=64))
    name = fields.String(required=True, validate=validate.Length(min=1, max=64))
    data = fields.Dict(keys=fields.String(), required=True)
    timestamp = EventTimestamp(
        required=True,
        metadata={"type": "string", "example": "2021-01-01 09:15:27.243860"},
    )


# One instance for every request: see EventTypeRegistry on why sharing is safe and worth it.
_ENVELOPE = EventEnvelope()
@functools.cache
def envelope_check() -> Callable[[object], bool]:
    """The envelope's compiled check, made once per process, on first use (create_app warms it).

    The converter (in app.event_types, which this module imports) cannot import EventTimestamp
    without a cycle: its rule comes from here, as a format that calls the very function the field uses.
    """
    return compile_fast_check(
        _ENVELOPE,
        extra_fields={EventTimestamp: {"type": "string", "format": "event-timestamp"}},
        formats={"event-timestamp": lambda value: event_instant(value) is not None},
    )


@dataclass
class Verdict:
    """What became of one incoming item: an accepted event or a rejection."""

    event: dict | None = None
    kind: str | None = None
    errors: dict = field(default_factory=dict)
    category: str | None = None
    name: str | None = None
    registered: bool = True

    @property
    def accepted(self) -> bool:
        return self.event is not None


def nesting_depth(value, depth: int = 1) -> int:
    """How deep a JSON value nests (a scalar is 1, `{"a": 1}` is 2); counting stops past MAX_DEPTH.

    Profiled, this walk was the web process's largest cost after the compiled checks: it now calls
    itself only for containers, not for each of the scalars that make up most of an event.
    """
    if depth > MAX_DEPTH:
        return depth
    if type(value) is dict:
        children = value.values()
    elif type(value) is list:
        children = value
    else:
        return depth
    deepest = depth
    for child in children:
        if type(child) is dict or type(child) is list:
            deepest = max(deepest, nesting_depth(child, depth + 1))
        elif deepest == depth:
            deepest = depth + 1
    return deepest


def has_nul(value, encoded: bytes | None = None) -> bool:
    """Whether any string or key in a JSON value holds a NUL character (`encoded`: its JSON, if known)."""
    # orjson writes every NUL as the escape \u0000: without that text in its JSON, there is none.
    if encoded is None:
        try:
            encoded = orjson.dumps(value)
        except TypeError:
            return _holds_nul(value)
    if b"\\u0000" not in encoded:
        return False
    return _holds_nul(value)


def _holds_nul(value) -> bool:
    # The exact walk, for the rare value whose JSON holds the text (an escaped backslash can make it).
    if type(value) is str:
        return "\x00" in value
    if type(value) is dict:
        return any("\x00" in key or _holds_nul(item) for key, item in value.items())
    if type(value) is list:
        return any(_holds_nul(item) for item in value)
    return False


def _load_envelope(item: dict, fast_check: Callable[[object], bool] | None) -> tuple[dict | None, dict]:
    """The envelope's values (ids as canonical strings or UUIDs, the timestamp in UTC), or its errors.

    The compiled check recognises a valid envelope without marshmallow; marshmallow judges the rest.
    """
    if fast_check is not None and fast_check(item):
        # The check allows only the canonical UUID spelling: lowercased, it is what str(uuid.UUID(...)) gives.
        envelope = {"session_id": item["session_id"].lower(), "timestamp": event_instant(item["timestamp"])}
        if "event_id" in item:
            envelope["event_id"] = item["event_id"].lower()
        return envelope, {}
    try:
        return _ENVELOPE.load(item), {}
    except ValidationError as exc:
        return None, string_keys(exc.normalized_messages())


def _payload_errors(data: dict, schema: Schema | None, fast_check: Callable[[object], bool] | None) -> dict:
    """What is wrong with `data`: its size, then its type's schema (after the compiled check, if it has one)."""
    if len(orjson.dumps(data)) > MAX_DATA_BYTES:
        return {"_schema": [f"Larger than {MAX_DATA_BYTES // 1024} KiB as JSON."]}
    if schema is None or (fast_check is not None and fast_check(data)):
        return {}
    try:
        schema.load(data)
    except ValidationError as exc:
        return string_keys(exc.normalized_messages())
    return {}


def validate_event(
    item, registry: EventTypeRegistry, *, now: datetime, max_skew: float, strict_types: bool, compiled: bool = True
) -> Verdict:
    """Validate one incoming event; an accepted one comes back ready to publish.

    With `compiled=False` marshmallow alone judges (the reference the tests hold the compiled checks to).
    """
    if not isinstance(item, dict):
        return Verdict(kind=INVALID_EVENT, errors={"_schema": ["An event must be a JSON object."]})
    category = item.get("category") if isinstance(item.get("category"), str) else None
    name = item.get("name") if isinstance(item.get("name"), str) else None
    verdict = Verdict(category=category and category[:64], name=name and name[:64])

    if nesting_depth(item) > MAX_DEPTH:
        verdict.kind, verdict.errors = INVALID_EVENT, {"_schema": [f"Nesting deeper than {MAX_DEPTH}."]}
        return verdict
    # The check uses the very encoder that carries accepted events to the worker: what it cannot
    # write exactly (a number orjson would round, see json_numbers) is refused here, naming the field,
    # never found later as a failed publish.
    try:
        encoded = orjson.dumps(item)
    except TypeError:
        verdict.kind = INVALID_EVENT
        verdict.errors = unencodable_errors(item) or {"_schema": ["Not representable as JSON."]}
        return verdict
    if has_nul(item, encoded):
        verdict.kind = INVALID_EVENT
        verdict.errors = {"_schema": ["Strings must not contain the NUL character (\\u0000)."]}
        return verdict

    envelope, envelope_errors = _load_envelope(item, envelope_check() if compiled else None)

    payload_errors: dict = {}
    data = item.get("data")
    schema = registry.schema_for(category, name) if category and name else None
    verdict.registered = schema is not None
    if isinstance(data, dict):
        fast_check = registry.fast_check_for(category, name) if compiled and schema is not None else None
        payload_errors = _payload_errors(data, schema, fast_check)

    if envelope_errors:
        if payload_errors:
            envelope_errors = {**envelope_errors, "data": payload_errors}
        verdict.kind, verdict.errors = INVALID_EVENT, envelope_errors
        return verdict
    if payload_errors:
        verdict.kind, verdict.errors = INVALID_PAYLOAD, {"data": payload_errors}
        return verdict
    if schema is None and strict_types:
        verdict.kind = UNKNOWN_EVENT_TYPE
        verdict.errors = {"name": [f"No schema is registered for ({category!r}, {name!r})."]}
        return verdict
    if envelope["timestamp"] > now + timedelta(seconds=max_skew):
        verdict.kind = FUTURE_TIMESTAMP
        verdict.errors = {
            "timestamp": [f"More than {int(max_skew)} s ahead of the server's clock ({now.isoformat()})."]
        }
        return verdict

    verdict.event = {
        "event_id": str(envelope.get("event_id") or uuid.uuid4()),
        "session_id": str(envelope["session_id"]),
        "category": category,
        "name": name,
        "data": data,
        "timestamp": envelope["timestamp"].isoformat(),
    }
    return verdict
