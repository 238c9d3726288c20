"""Sessions: a session's summary and its events (read scope)."""


from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE, Schema, fields

from app.api.auth import SECURITY, require_scope
from app.api.schemas import (
    PAGE_ERRORS,
    READ_ERRORS,
    SESSION_ID,
    EventFilterQuery,
    EventPage,
    document_errors,
    parse_session_id,
    split_page_query,
)
from app.queries.events import EventFilters, list_events, session_exists, session_summary

blp = Blueprint("sessions", __name__, url_prefix="/api/v1/sessions", description="Read sessions")

NOT_FOUND = {404: "No event of this session is stored"}


class SessionSummary(Schema):
    session_id = fields.UUID(required=True)
    first_event_at = fields.DateTime(required=True, metadata={"description": "Earliest event timestamp"})
    last_event_at = fields.DateTime(required=True, metadata={"description": "Latest event timestamp"})
    event_count = fields.Integer(required=True)
    applications = fields.List(fields.String(), required=True,
                               metadata={"description": "Names of the applications that sent events"})


@blp.route("/<session_id>", parameters=[SESSION_ID])
class SessionItem(MethodView):
    @blp.doc(security=SECURITY)
    @blp.response(200, SessionSummary)
    @document_errors(blp, {**READ_ERRORS, **NOT_FOUND, 422: "session_id is not a UUID"})
    @require_scope("read")
    def get(self, session_id: str):
        """A session's time span, event count and applications"""
        summary = session_summary(parse_session_id(session_id))
        if summary is None:
            abort(404, message=f"No event of session {session_id} is stored.")
        return summary


@blp.route("/<session_id>/events", parameters=[SESSION_ID])
class SessionEvents(MethodView):
    @blp.doc(security=SECURITY)
    @blp.response(200, EventPage)
    @document_errors(blp, {**PAGE_ERRORS, **NOT_FOUND})
    @require_scope("read")
    @blp.arguments(EventFilterQuery, location="query", unknown=RAISE)
    def get(self, query, session_id: str):
        """A session's events by timestamp (ties by arrival), a page at a time"""
        filters, limit, cursor = split_page_query(query, session_id=parse_session_id(session_id))
        if not session_exists(filters["session_id"]):
            abort(404, message=f"No event of session {session_id} is stored.")
        return list_events(EventFilters(**filters), limit, cursor)
