"""Turn one track() call into a checked event, encoded once for the request body."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eye_client import reasons

MAX_LABEL_CHARS = 64
MAX_DATA_BYTES = 32 * 1024
# The server refuses JSON nested deeper than 32 levels; the request body wraps `data` in three
# ({"events": [{...}]}), so keeping `data` to 29 keeps the whole body within the limit.
MAX_DATA_DEPTH = 29


class InvalidEvent(ValueError):
    """An event the server would refuse; carries the drop reason and the event as given."""

    def __init__(self, reason: str, message: str, event: dict[str, Any]) -> None:
        super().__init__(message)
        self.reason = reason
        self.event = event


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """An event ready to send: the dict handed to on_drop and its JSON bytes for the body."""

    event: dict[str, Any]
    encoded: bytes

    @property
    def event_id(self) -> str:
        return self.event["event_id"]


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON, measured the way the server measures its limits."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def build_event(
    session_id: Any,
    category: Any,
    name: Any,
    data: Any,
    timestamp: Any = None,
    event_id: Any = None,
) -> QueuedEvent:
    """Check and encode one event; raise InvalidEvent if the server could not accept it."""
    raw = {
        "event_id": str(uuid.uuid4()) if event_id is None else event_id,
        "session_id": session_id,
        "category": category,
        "name": name,
        "data": data,
        "timestamp": timestamp,
    }

    def invalid(message: str, reason: str = reasons.INVALID) -> InvalidEvent:
        return InvalidEvent(reason, message, {**raw, "event_id": str(raw["event_id"])})

    event_id_text = _uuid_text(raw["event_id"])
    session_text = _uuid_text(session_id)
    if event_id_text is None:
        raise invalid("event_id is not a UUID")
    if session_text is None:
        raise invalid("session_id is not a UUID")
    for field, value in (("category", category), ("name", name)):
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_LABEL_CHARS:
            raise invalid(f"{field} must be a string of 1-{MAX_LABEL_CHARS} characters")
    if not isinstance(data, Mapping):
        raise invalid("data must be a JSON object (a dict)")
    try:
        stamp = format_timestamp(timestamp)
    except (TypeError, ValueError) as exc:
        raise invalid(f"timestamp: {exc}") from None

    event = {
        "event_id": event_id_text,
        "session_id": session_text,
        "category": category,
        "name": name,
        "data": dict(data),
        "timestamp": stamp,
    }
    try:
        data_size = len(encode_json(event["data"]))
        # Encoding now, on the caller's thread, snapshots data the caller may mutate later.
        encoded = encode_json(event)
    except (TypeError, ValueError, RecursionError) as exc:
        raise invalid(f"data is not JSON-serialisable: {exc}") from None
    if data_size > MAX_DATA_BYTES:
        raise invalid(f"data is {data_size} bytes as JSON, over {MAX_DATA_BYTES}", reasons.OVERSIZE)
    if _nests_deeper_than(event["data"], MAX_DATA_DEPTH):
        raise invalid(f"data nests deeper than {MAX_DATA_DEPTH} levels")
    return QueuedEvent(event, encoded)


def format_timestamp(value: Any) -> str:
    """ISO 8601 with an explicit offset; None means now, a naive time is taken as UTC."""
    if value is None:
        moment = datetime.now(UTC)
    elif isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value)
    else:
        raise TypeError(f"expected a datetime or an ISO 8601 string, not {type(value).__name__}")
    if moment.tzinfo is None:
        # The server reads a missing offset as UTC; saying so explicitly removes the doubt.
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def _uuid_text(value: Any) -> str | None:
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _nests_deeper_than(value: Any, limit: int) -> bool:
    # Iterative, so hostile or cyclic data cannot blow the stack; a cycle just exceeds the limit.
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping):
            children = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
