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
# How much of a refused item the errors store keeps.
RAW_LIMIT = 8 * 1024


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
                     category: str | None = None, name: str | None = None, *, default=None) -> dict:
    """A refusal as the errors store keeps it; `default` writes what plain JSON cannot (see raw_excerpt)."""
    return {
        "id": str(uuid.uuid4()),
        "application_id": application_id,
        "received_at": received_at.isoformat(),
        "kind": kind,
        "category": category,
        "name": name,
        "errors": errors,
        "raw": raw_excerpt(raw, default=default),
    }


def raw_excerpt(raw, *, default=None) -> str:
    """The raw item as text for the errors store: at most 8 KiB, without NUL characters.

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
    # PostgreSQL's text cannot hold NUL; keep it visible rather than failing the worker.
    return text[:RAW_LIMIT].replace("\x00", "\\u0000")
