"""Events: sending them (ingest scope) and reading them back (read scope)."""

from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE, Schema, fields

from app.api.auth import SECURITY, current_principal, require_scope
from app.api.request_body import read_json_body
from app.api.schemas import PAGE_ERRORS, ErrorBody, EventFilterQuery, EventPage, document_errors, split_page_query
from app.ingest.events import NotAllowed, check_allowed, ingest_events, record_request_rejection
from app.ingest.publishing import BrokerUnavailable
from app.ingest.validation import INVALID_EVENT, EventEnvelope
from app.queries.events import EventFilters, event_status, list_events

MAX_BATCH = 500
RETRY_AFTER_SECONDS = "2"

blp = Blueprint("events", __name__, url_prefix="/api/v1/events", description="Send and query events")


class EventAccepted(Schema):
    event_id = fields.UUID(required=True)


class RejectedItem(Schema):
    index = fields.Integer(required=True)
    kind = fields.String(required=True)
    errors = fields.Dict(required=True)


class BatchAccepted(Schema):
    accepted = fields.Integer(required=True)
    event_ids = fields.List(fields.UUID(), required=True)
    rejected = fields.List(fields.Nested(RejectedItem), required=True)


class EventBatch(Schema):
    events = fields.List(fields.Nested(EventEnvelope), required=True)


class EventQuery(EventFilterQuery):
    session_id = fields.UUID()


class StoredCopy(Schema):
    """The event as stored under this id by one application, at one timestamp."""

    application = fields.String(required=True, allow_none=True)
    session_id = fields.UUID(required=True)
    category = fields.String(required=True)
    name = fields.String(required=True)
    timestamp = fields.DateTime(required=True)
    received_at = fields.DateTime(required=True)


class Refusal(Schema):
    """A recorded refusal of an item that carried this id."""

    id = fields.UUID(required=True, metadata={"description": "The refusal's id in GET /api/v1/errors"})
    application = fields.String(required=True, allow_none=True)
    kind = fields.String(required=True)
    category = fields.String(required=True, allow_none=True)
    name = fields.String(required=True, allow_none=True)
    errors = fields.Dict(required=True)
    received_at = fields.DateTime(required=True)


class EventStatus(Schema):
    event_id = fields.UUID(required=True)
    stored = fields.List(fields.Nested(StoredCopy), required=True,
                         metadata={"description": "One per application and timestamp (the event's identity)"})
    refused = fields.List(fields.Nested(Refusal), required=True)


def _ingest(items: list):
    principal = current_principal()
    try:
        return ingest_events(principal, items)
    except BrokerUnavailable:
        abort(
            503,
            message="The event queue did not confirm in time: retry shortly with the same event_id "
                    "(a retry is never stored twice).",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )


def _reject_body(principal, message: str, body) -> None:
    record_request_rejection(principal, INVALID_EVENT, {"_body": [message]}, body)
    abort(422, message=message)


@blp.route("")
class Events(MethodView):
    @blp.doc(security=SECURITY, requestBody={
        "required": True, "content": {"application/json": {"schema": EventEnvelope}},
    })
    @blp.response(202, EventAccepted)
    @blp.alt_response(422, schema=ErrorBody, description="The event was rejected (and recorded)")
    @blp.alt_response(503, schema=ErrorBody, description="Broker unavailable; see Retry-After")
    @require_scope("ingest")
    def post(self):
        """Send one event"""
        body = read_json_body(current_principal())
        check_items_allowed([body])
        result = _ingest([body])
        verdict = result.verdicts[0]
        if not verdict.accepted:
            abort(422, message=f"The event was rejected: {verdict.kind}.", errors=verdict.errors,
                  extra={"kind": verdict.kind})
        return {"event_id": verdict.event["event_id"]}

    @blp.doc(security=SECURITY)
    @blp.response(200, EventPage)
    @document_errors(blp, PAGE_ERRORS)
    @require_scope("read")
    # Unknown parameters are refused: a misspelt filter must not silently list everything.
    @blp.arguments(EventQuery, location="query", unknown=RAISE)
    def get(self, query):
        """List stored events by timestamp (ties by arrival), a page at a time"""
        filters, limit, cursor = split_page_query(query)
        return list_events(EventFilters(**filters), limit, cursor)


@blp.route("/batch")
class EventBatches(MethodView):
    @blp.doc(security=SECURITY, requestBody={
        "required": True, "content": {"application/json": {"schema": EventBatch}},
    })
    @blp.response(202, BatchAccepted)
    @blp.alt_response(422, schema=ErrorBody, description="No event was accepted (all recorded)")
    @blp.alt_response(503, schema=ErrorBody, description="Broker unavailable; see Retry-After")
    @require_scope("ingest")
    def post(self):
        """Send up to 500 events; each gets its own verdict"""
        principal = current_principal()
        body = read_json_body(principal)
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            _reject_body(principal, 'The body must be an object with an "events" list.', body)
        items = body["events"]
        if not 1 <= len(items) <= MAX_BATCH:
            _reject_body(principal, f"A batch holds 1 to {MAX_BATCH} events; got {len(items)}.", body)
        check_items_allowed(items)
        result = _ingest(items)
        answer = {"accepted": len(result.event_ids), "event_ids": result.event_ids,
                  "rejected": result.rejected}
        if not result.event_ids:
            abort(422, message="No event in the batch was accepted.", extra=answer)
        return answer


def check_items_allowed(items: list) -> None:
    """A dashboard token may send only its own session's mouse moves: 403 otherwise."""
    try:
        check_allowed(current_principal(), items)
    except NotAllowed as exc:
        abort(403, message=str(exc))


@blp.route("/<uuid:event_id>")
class EventLookup(MethodView):
    @blp.doc(security=SECURITY)
    @blp.response(200, EventStatus)
    @blp.alt_response(404, schema=ErrorBody, description="Nothing stored or refused carried this event_id")
    @require_scope("read")
    def get(self, event_id):
        """Where is my event? Every stored copy of an event_id, and every refusal that carried it"""
        status = event_status(event_id)
        if status is None:
            abort(404, message=f"No stored event and no recorded refusal carries event_id {event_id}. "
                               "An event accepted moments ago may still be on its way to storage.")
        return status
