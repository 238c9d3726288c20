"""Reads a JSON request body, turning every way it can be unreadable into a clear 4xx."""

import orjson
from flask import request
from flask_smorest import abort
from werkzeug.exceptions import RequestEntityTooLarge

from app.identity.keys import Principal
from app.ingest import json_numbers
from app.ingest.events import record_request_rejection
from app.ingest.validation import BODY_TOO_LARGE, MALFORMED_JSON, UNSUPPORTED_MEDIA_TYPE


def read_json_body(principal: Principal):
    """The parsed body; aborts with 415, 413 or 400 (each recorded in the errors store).

    A number that would not be stored exactly comes back as a json_numbers.InexactNumber, which
    validation refuses in the item holding it.
    """
    if request.mimetype != "application/json":
        record_request_rejection(
            principal, UNSUPPORTED_MEDIA_TYPE,
            {"Content-Type": [f"Expected application/json, got {request.mimetype or 'nothing'!r}."]}, b"",
        )
        abort(415, message="Send the body as JSON with Content-Type: application/json.")
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        record_request_rejection(principal, BODY_TOO_LARGE, {"_body": ["Larger than 1 MiB."]}, b"")
        abort(413, message="The body is larger than 1 MiB; send fewer events per request.")
    if not raw.strip():
        record_request_rejection(principal, MALFORMED_JSON, {"_body": ["Empty body."]}, raw)
        abort(400, message="The body is empty; send a JSON object.")
    try:
        return json_numbers.loads(raw)
    except orjson.JSONDecodeError as exc:
        reason = f"Not valid JSON: {exc}."
        record_request_rejection(principal, MALFORMED_JSON, {"_body": [reason]}, raw)
        abort(400, message=reason)
