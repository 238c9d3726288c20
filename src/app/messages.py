"""The ingest message: what the API publishes and the worker consumes, defined once (both sides import it).

    {"v": 1, "parts": [part, ...]}
    part = {"application_id", "received_at", "events": [event, ...], "rejections": [record, ...]}

One part per request: the web process's publisher merges the parts waiting at one moment into one
message (see ingest/publishing.py), and the worker stores a message in one transaction (see
storage/message.py). A message from the release before versions, `{"parts": [...]}`, is version 1.
"""

import uuid
from datetime import datetime

import orjson

PERSIST_EVENTS_TASK = "eye.persist_events"
MESSAGE_VERSION = 1
# What one merged message may hold: a worker stores it in one transaction.
MAX_EVENTS_PER_MESSAGE = 1000
MAX_BYTES_PER_MESSAGE = 4 * 1024 * 1024
# How much of a refused body the errors store keeps (an excerpt: it cannot be replayed).
RAW_LIMIT = 8 * 1024
# A refused item is kept whole up to this, so it can be replayed: the largest `data` an event may
# carry (32 KiB as JSON) with room for its envelope and for numbers written back as sent.
RAW_ITEM_LIMIT = 64 * 1024


class UnknownMessage(ValueError):
    """A message of a shape or version this worker does not know."""


def build_part(application_id: int | None, received_at: datetime, events: list[dict], rejections: list[dict]) -> dict:
    """One request's part: its accepted events and its rejection records."""
    return {"application_id": application_id, "received_at": received_at.isoformat(),
            "events": events, "rejections": rejections}


def build_message(parts: list) -> dict:
    """A message of parts (each a dict, or already-encoded JSON as an orjson.Fragment)."""
    return {"v": MESSAGE_VERSION, "parts": parts}


def parts_of(message: dict) -> list[dict]:
    """The parts of a message; UnknownMessage if it is not one this worker can read."""
    if not isinstance(message, dict) or not isinstance(message.get("parts"), list):
        raise UnknownMessage("an ingest message holds a list of parts")
    if message.get("v", MESSAGE_VERSION) != MESSAGE_VERSION:
        raise UnknownMessage(f"ingest message version {message.get('v')!r}; this worker reads {MESSAGE_VERSION}")
    return message["parts"]


def rejection_record(application_id: int | None, kind: str, errors: dict, raw, received_at: datetime,
                     category: str | None = None, name: str | None = None, *, default=None,
                     whole_up_to: int = RAW_LIMIT) -> dict:
    """A refusal as the errors store keeps it; `default` writes what plain JSON cannot (see raw_excerpt).

    An item refused on its own is kept whole up to `whole_up_to` (RAW_ITEM_LIMIT from the ingest
    path), so it can be replayed; beyond that, and for a body, an excerpt of RAW_LIMIT.
    """
    return {
        "id": str(uuid.uuid4()),
        "application_id": application_id,
        "received_at": received_at.isoformat(),
        "kind": kind,
        "event_id": claimed_event_id(raw),
        "category": category,
        "name": name,
        "errors": errors,
        "raw": raw_excerpt(raw, default=default, whole_up_to=whole_up_to),
    }


def claimed_event_id(raw) -> str | None:
    """The event_id a refused item carried, in canonical form, when it is a valid UUID."""
    if not isinstance(raw, dict) or not isinstance(raw.get("event_id"), str):
        return None
    try:
        return str(uuid.UUID(raw["event_id"]))
    except ValueError:
        return None


def raw_excerpt(raw, *, default=None, whole_up_to: int = RAW_LIMIT) -> str:
    """The raw item as text for the errors store: whole up to `whole_up_to` characters, else its
    first RAW_LIMIT; without NUL characters.

    `default` is orjson's hook for values that are not plain JSON (the web side writes a number it
    refused back as the very text the client sent).
    """
    if isinstance(raw, bytes):
        text = raw[:RAW_LIMIT].decode("utf-8", errors="replace")
    else:
        try:
            text = orjson.dumps(raw, default=default).decode()
        except TypeError:
            text = repr(raw)
    if len(text) > whole_up_to:
        text = text[:RAW_LIMIT]
    # PostgreSQL's text cannot hold NUL; keep it visible rather than failing the worker.
    return text.replace("\x00", "\\u0000")
