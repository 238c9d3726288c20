"""Response and request schemas shared by several resources."""

import re
import uuid

from flask_smorest import Blueprint, abort
from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from app.timestamps import utc_instant


class ErrorBody(Schema):
    """Every error answer: flask-smorest's shape (some answers add fields, e.g. a batch's verdicts)."""

    class Meta:
        unknown = INCLUDE

    code = fields.Integer(required=True)
    status = fields.String(required=True)
    message = fields.String()
    errors = fields.Dict()
    kind = fields.String(metadata={"description": "The kind of rejection, for a rejected event"})


# --- Read API: query parameters -------------------------------------------------------------

# What a `+` offset looks like once a query string has decoded it to a space
# (`?since=2021-01-01T10:00:00+02:00` typed into curl without escaping).
_SPACED_OFFSET = re.compile(r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")


class QueryTimestamp(fields.DateTime):
    """An ISO 8601 instant in a query string: date or date-time, `T` or space; no offset means UTC."""

    default_error_messages = {
        "invalid": "Not an ISO 8601 date-time (e.g. 2021-01-01T09:15:27.243860+00:00).",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid")
        text = _SPACED_OFFSET.sub(r"\1+\2", value.strip())
        try:
            return utc_instant(text)
        except ValueError:
            raise self.make_error("invalid") from None


def _no_nul(value: str) -> None:
    if "\x00" in value:
        raise ValidationError("Must not contain the NUL character.")


class QueryText(fields.String):
    """A text filter of 1 to `max_length` characters; no NUL, which nothing stored can hold."""

    def __init__(self, max_length: int = 64, **kwargs):
        super().__init__(validate=[validate.Length(min=1, max=max_length), _no_nul], **kwargs)


class TimeWindowQuery(Schema):
    """A half-open time window [since, until)."""

    since = QueryTimestamp(metadata={"description": "From this instant, included (no offset: UTC)"})
    until = QueryTimestamp(metadata={"description": "Up to this instant, excluded (no offset: UTC)"})

    @validates_schema
    def since_not_after_until(self, data, **kwargs):
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise ValidationError("`since` is after `until`.", field_name="since")


class PageQuery(TimeWindowQuery):
    """A time window, read a page at a time."""

    limit = fields.Integer(
        load_default=100, validate=validate.Range(min=1, max=1000),
        metadata={"description": "Items per page (1–1000)"},
    )
    cursor = fields.String(metadata={"description": "`next_cursor` of the previous page (empty: the first page)"})


def split_page_query(query: dict, **extra) -> tuple[dict, int, str | None]:
    """A loaded PageQuery as (its filters, with `extra` added; the limit; the cursor or None)."""
    filters = {**query, **extra}
    return filters, filters.pop("limit"), filters.pop("cursor", None)


class EventFilterQuery(PageQuery):
    """Filters of an event listing; each one is served by an index."""

    category = QueryText()
    name = QueryText()
    application = QueryText(metadata={"description": "The sending application's name"})


# --- Read API: answers ----------------------------------------------------------------------


class EventItem(Schema):
    """A stored event."""

    event_id = fields.UUID(required=True)
    session_id = fields.UUID(required=True)
    application = fields.String(required=True, metadata={"description": "The sending application"})
    category = fields.String(required=True)
    name = fields.String(required=True)
    data = fields.Dict(required=True)
    timestamp = fields.DateTime(required=True, metadata={"description": "When it happened"})
    received_at = fields.DateTime(
        required=True, metadata={"description": "When the API received it: orders equal timestamps"},
    )


class PageFields(Schema):
    next_cursor = fields.String(
        required=True, allow_none=True,
        metadata={"description": "Pass as `cursor` for the next page; null on the last page"},
    )


class EventPage(PageFields):
    items = fields.List(fields.Nested(EventItem), required=True)


def document_errors(blp: Blueprint, errors: dict[int, str]):
    """Document the error answers (`ErrorBody`) a view may give, status by status."""

    def decorator(view):
        for code, description in errors.items():
            view = blp.alt_response(code, schema=ErrorBody, description=description)(view)
        return view

    return decorator


# The errors every read endpoint may answer…
READ_ERRORS = {
    401: "No API key, or an unknown or revoked one",
    403: "The key lacks the `read` scope",
}
# …those of one that takes query parameters…
PARAMETER_ERRORS = {
    **READ_ERRORS,
    422: "A parameter is invalid: a bad UUID or timestamp, `since` after `until`, `limit` outside "
         "1–1000, or a parameter this endpoint does not know",
}
# …and those of a paginated one.
PAGE_ERRORS = {
    **PARAMETER_ERRORS,
    400: "The cursor is malformed, was altered, or belongs to another listing",
}


# A plain string in the route, parsed by parse_session_id: a bad UUID is then a 422 that says so, not a 404.
SESSION_ID = {"in": "path", "name": "session_id", "required": True,
              "schema": {"type": "string", "format": "uuid"}}


def parse_session_id(value: str) -> uuid.UUID:
    """A session id from a URL path; 422 (naming at most 64 characters of it) if it is not a UUID."""
    try:
        return uuid.UUID(value)
    except ValueError:
        abort(422, message=f"session_id {value[:64]!r} is not a UUID.",
              errors={"path": {"session_id": ["Not a valid UUID."]}})
