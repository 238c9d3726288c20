"""A session's live mouse metrics, as a series in processing order (read scope)."""


from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE, Schema, fields, validate

from app.api.auth import SECURITY, require_scope
from app.api.schemas import PAGE_ERRORS, SESSION_ID, PageFields, document_errors, parse_session_id
from app.queries.mouse import UnknownSession, metrics_page

blp = Blueprint(
    "mouse_metrics", __name__, url_prefix="/api/v1/sessions", description="Live mouse metrics of a session"
)



class MouseMetricsQuery(Schema):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000),
                           metadata={"description": "Items per page (1–1000)"})
    cursor = fields.String(metadata={"description": "`next_cursor` of the previous page"})


class MouseMetric(Schema):
    """The metrics after one processed `mouse / move` batch."""

    t = fields.Float(required=True, metadata={"description": "The batch's latest point, epoch ms"})
    distance = fields.Float(required=True, metadata={"description": "The session's distance so far, px"})
    velocity = fields.Float(required=True, metadata={"description": "Over this batch's time span, px/s"})
    peak_velocity = fields.Float(required=True, metadata={"description": "Highest step velocity so far, px/s"})
    points = fields.Integer(required=True, metadata={"description": "The session's distinct points so far"})


class MouseMetricsPage(PageFields):
    items = fields.List(fields.Nested(MouseMetric), required=True)



@blp.route("/<session_id>/mouse-metrics", parameters=[SESSION_ID])
class SessionMouseMetrics(MethodView):
    @blp.doc(security=SECURITY)
    @blp.response(200, MouseMetricsPage)
    @document_errors(blp, {
        **PAGE_ERRORS,
        422: "session_id is not a UUID, `limit` is outside 1–1000, or a parameter is unknown",
        404: "Nothing of this session is stored",
    })
    @require_scope("read")
    @blp.arguments(MouseMetricsQuery, location="query", unknown=RAISE, as_kwargs=True)
    def get(self, session_id: str, limit: int, cursor: str | None = None):
        """A session's mouse metrics, one per processed batch; the last carries its totals"""
        try:
            return metrics_page(parse_session_id(session_id), limit, cursor)
        except UnknownSession:
            abort(404, message=f"Nothing of session {session_id} is stored.")
