"""Opaque, signed keyset cursors: a page ends at a row's sort key, the next page starts after it."""

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer


class BadCursor(Exception):
    """The cursor was not made by this service (malformed or tampered)."""


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="eye-page-cursor")


def encode_cursor(kind: str, sort_key: list) -> str:
    """A cursor for the page after `sort_key` (JSON-able values) of a listing named `kind`."""
    return _serializer().dumps({"k": kind, "after": sort_key})


def decode_cursor(kind: str, cursor: str) -> list:
    """The sort key a cursor of listing `kind` points after; BadCursor if it is not one of ours."""
    try:
        payload = _serializer().loads(cursor)
    except BadSignature:
        raise BadCursor("The cursor is malformed or was altered; start again without one.") from None
    if not isinstance(payload, dict) or payload.get("k") != kind or not isinstance(payload.get("after"), list):
        raise BadCursor("This cursor belongs to another listing.")
    return payload["after"]
