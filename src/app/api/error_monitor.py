"""The errors monitor: rejected events and their summary (read scope), and their replay (admin)."""

from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE, Schema, fields, validate

from app.api.auth import SECURITY, require_scope
from app.api.schemas import (
    PAGE_ERRORS,
    PARAMETER_ERRORS,
    ErrorBody,
    PageFields,
    PageQuery,
    QueryText,
    TimeWindowQuery,
    document_errors,
    split_page_query,
)
from app.ingest.publishing import BrokerUnavailable
from app.ingest.replay import MAX_REPLAY, ReplayFilters, replay
from app.queries.errors import error_summary
from app.queries.events import RejectionFilters, list_rejections

blp = Blueprint("errors", __name__, url_prefix="/api/v1/errors",
                description="Monitor the events that were rejected")


class RejectionQuery(PageQuery):
    kind = QueryText(max_length=32, metadata={"description": "e.g. invalid_payload, future_timestamp"})
    application = QueryText(metadata={"description": "The sending application's name"})
    category = QueryText(max_length=64, metadata={"description": "The refused item's event category"})
    name = QueryText(max_length=64, metadata={"description": "The refused item's event name"})
    event_id = fields.UUID(metadata={"description": "Only refusals of items that carried this event_id"})
    replayed = fields.Boolean(metadata={"description": "false: only refusals never replayed; true: only replayed ones"})


class RejectionItem(Schema):
    """A rejected event, as received."""

    id = fields.UUID(required=True)
    received_at = fields.DateTime(required=True)
    application = fields.String(required=True, allow_none=True,
                                metadata={"description": "Null when it could not be attributed"})
    kind = fields.String(required=True)
    event_id = fields.UUID(required=True, allow_none=True,
                           metadata={"description": "The event_id the item carried, if it had a valid one"})
    category = fields.String(required=True, allow_none=True)
    name = fields.String(required=True, allow_none=True)
    errors = fields.Dict(required=True, metadata={"description": "Field errors, as the sender was told"})
    raw = fields.String(required=True, metadata={
        "description": "The item as received, whole up to 64 KiB; a body, or a larger item, cut to 8 KiB"})
    replayed_at = fields.DateTime(required=True, allow_none=True,
                                  metadata={"description": "When POST /api/v1/errors/replay last replayed it"})
    replay_outcome = fields.String(required=True, allow_none=True, metadata={
        "description": "accepted (sent again, stored once), not_replayable, or the kind it still fails with"})


class RejectionPage(PageFields):
    items = fields.List(fields.Nested(RejectionItem), required=True)


class TypeKindCount(Schema):
    category = fields.String(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True)
    count = fields.Integer(required=True)


class TypeCount(Schema):
    category = fields.String(required=True)
    name = fields.String(required=True)
    count = fields.Integer(required=True)


class ErrorSummary(Schema):
    by_kind = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    by_type = fields.List(fields.Nested(TypeKindCount), required=True,
                          metadata={"description": "Rejections that name an event type"})
    unregistered = fields.List(fields.Nested(TypeCount), required=True,
                               metadata={"description": "Stored events whose type has no schema"})


@blp.route("")
class Rejections(MethodView):
    @blp.doc(security=SECURITY)
    @blp.response(200, RejectionPage)
    @document_errors(blp, PAGE_ERRORS)
    @require_scope("read")
    @blp.arguments(RejectionQuery, location="query", unknown=RAISE)
    def get(self, query):
        """List rejected events in the order they were received, a page at a time"""
        filters, limit, cursor = split_page_query(query)
        return list_rejections(RejectionFilters(**filters), limit, cursor)


@blp.route("/summary")
class RejectionSummary(MethodView):
    @blp.doc(security=SECURITY)
    @blp.response(200, ErrorSummary)
    @document_errors(blp, PARAMETER_ERRORS)
    @require_scope("read")
    @blp.arguments(TimeWindowQuery, location="query", unknown=RAISE)
    def get(self, query):
        """Count rejections by kind and type, and stored events of unregistered types, by time received"""
        return error_summary(query.get("since"), query.get("until"))


class ReplayRequest(TimeWindowQuery):
    """Which refusals to replay (as the errors list filters them, or `ids`), and how many at most."""

    kind = QueryText(max_length=32, metadata={"description": "e.g. invalid_payload, future_timestamp"})
    category = QueryText(max_length=64, metadata={"description": "The refused item's event category"})
    name = QueryText(max_length=64, metadata={"description": "The refused item's event name"})
    application = QueryText(metadata={"description": "The sending application's name"})
    ids = fields.List(fields.UUID(), validate=validate.Length(min=1, max=MAX_REPLAY),
                      metadata={"description": "Explicit refusals (their `id` in GET /api/v1/errors)"})
    replayed = fields.Boolean(metadata={"description": "false: only refusals never replayed"})
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=MAX_REPLAY),
                           metadata={"description": f"Refusals handled by this call (1–{MAX_REPLAY})"})
    cursor = fields.String(metadata={"description": "`next_cursor` of the previous call, to go on"})
    dry_run = fields.Boolean(load_default=False, metadata={"description": "Count only; change nothing"})


class ReplayAnswer(Schema):
    dry_run = fields.Boolean(required=True)
    matched = fields.Integer(required=True, metadata={"description": "Refusals handled by this call"})
    would_pass = fields.Integer(metadata={"description": "dry run: would be accepted now"})
    replayed = fields.Integer(metadata={"description": "sent through the ingest path (stored once)"})
    still_failing = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                                metadata={"description": "By the kind they fail with now"})
    not_replayable = fields.Integer(required=True, metadata={
        "description": "A body that was never JSON or never items, an item kept only as an excerpt, "
                       "or one of no known application"})
    next_cursor = fields.String(required=True, allow_none=True,
                                metadata={"description": "More refusals match: call again with it"})


@blp.route("/replay")
class Replay(MethodView):
    @blp.doc(security=SECURITY)
    @blp.response(200, ReplayAnswer)
    @document_errors(blp, {**PAGE_ERRORS, 403: "The key lacks the admin scope"})
    @blp.alt_response(503, schema=ErrorBody, description="The broker did not confirm; nothing was noted")
    @require_scope("admin")
    @blp.arguments(ReplayRequest, unknown=RAISE)
    def post(self, body):
        """Check recorded refusals again against the current schemas and send the ones that pass"""
        dry_run, limit, cursor = body.pop("dry_run"), body.pop("limit"), body.pop("cursor", None)
        ids = body.pop("ids", None)
        filters = ReplayFilters(**body, ids=tuple(ids) if ids is not None else None)
        try:
            return replay(filters, limit, dry_run, cursor).as_dict()
        except BrokerUnavailable:
            abort(503, message="The event queue did not confirm in time; nothing was replayed. Replay again "
                               "shortly (an event replayed twice is stored once).",
                  headers={"Retry-After": "2"})
