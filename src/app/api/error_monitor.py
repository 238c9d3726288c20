"""The errors monitor: rejected events and their summary (read scope)."""

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields

from app.api.auth import SECURITY, require_scope
from app.api.schemas import (
    PAGE_ERRORS,
    PARAMETER_ERRORS,
    PageFields,
    PageQuery,
    QueryText,
    TimeWindowQuery,
    document_errors,
    split_page_query,
)
from app.queries.errors import error_summary
from app.queries.events import RejectionFilters, list_rejections

blp = Blueprint("errors", __name__, url_prefix="/api/v1/errors",
                description="Monitor the events that were rejected")


class RejectionQuery(PageQuery):
    kind = QueryText(max_length=32, metadata={"description": "e.g. invalid_payload, future_timestamp"})
    application = QueryText(metadata={"description": "The sending application's name"})


class RejectionItem(Schema):
    """A rejected event, as received."""

    id = fields.UUID(required=True)
    received_at = fields.DateTime(required=True)
    application = fields.String(required=True, allow_none=True,
                                metadata={"description": "Null when it could not be attributed"})
    kind = fields.String(required=True)
    category = fields.String(required=True, allow_none=True)
    name = fields.String(required=True, allow_none=True)
    errors = fields.Dict(required=True, metadata={"description": "Field errors, as the sender was told"})
    raw = fields.String(required=True, metadata={"description": "The item as received, cut to 8 KiB"})


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
