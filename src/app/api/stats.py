"""Traffic statistics for the data team's console (read scope)."""

from datetime import UTC, datetime, timedelta

from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE, Schema, ValidationError, fields

from app.api.auth import SECURITY, require_scope
from app.api.schemas import PARAMETER_ERRORS, TimeWindowQuery, document_errors
from app.config import duration
from app.queries.volume import traffic_volume, volume_window

blp = Blueprint("stats", __name__, url_prefix="/api/v1/stats", description="Traffic over time, for charts")

DEFAULT_WINDOW = timedelta(hours=24)


class QueryDuration(fields.String):
    """A duration as the settings write them (`5m`, `1h`, `1d`), loaded as a timedelta."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            loaded = duration(text, attr)
        except ValueError as error:
            raise ValidationError(str(error)) from None
        if loaded is None:
            raise ValidationError("Give a duration such as 5m, 1h or 1d.")
        return loaded


class VolumeQuery(TimeWindowQuery):
    step = QueryDuration(load_default=timedelta(minutes=5), metadata={
        "description": "The chart's step, a whole number of minutes: 1m, 15m, 1h, 1d (default 5m). "
                       "A step of whole hours (1h, 6h, 1d) counts per hour of arrival (UTC): the window "
                       "is widened to whole hours"})


class TypeSeries(Schema):
    category = fields.String(required=True)
    name = fields.String(required=True)
    counts = fields.List(fields.Integer(), required=True, metadata={"description": "One per bucket"})
    total = fields.Integer(required=True)


class KindSeries(Schema):
    kind = fields.String(required=True)
    counts = fields.List(fields.Integer(), required=True, metadata={"description": "One per bucket"})
    total = fields.Integer(required=True)


class Volume(Schema):
    since = fields.DateTime(required=True, metadata={
        "description": "The window's start, down to its minute (to its UTC hour for a step of whole hours)"})
    until = fields.DateTime(required=True, metadata={
        "description": "The window's end, up to the end of its minute (of its UTC hour for a step of whole hours)"})
    step_seconds = fields.Integer(required=True)
    buckets = fields.List(fields.DateTime(), required=True, metadata={"description": "Each step's start"})
    stored = fields.List(fields.Nested(TypeSeries), required=True,
                         metadata={"description": "Stored events by type and minute of arrival, most first"})
    refused = fields.List(fields.Nested(KindSeries), required=True,
                          metadata={"description": "Recorded refusals by kind and minute of arrival, most first"})


@blp.route("/volume")
class TrafficVolume(MethodView):
    @blp.doc(security=SECURITY)
    @blp.response(200, Volume)
    @document_errors(blp, PARAMETER_ERRORS)
    @require_scope("read")
    @blp.arguments(VolumeQuery, location="query", unknown=RAISE)
    def get(self, query):
        """Stored events per type and refusals per kind, per step of time received (default: the last 24 h)

        Counted per minute of arrival: `since` is taken down to its minute and `until` up to the end
        of its minute. For a `step` of a whole number of hours (1h, 6h, 1d) they are counted per hour
        of arrival (UTC) instead, and the window is widened to whole hours: `since` down to its hour,
        `until` up to the end of its hour (so 10:20 to 12:05 in 1h steps answers 10:00 to 13:00, in
        three buckets). A window ending now includes the minute, or hour, now running.
        """
        until = query.get("until") or datetime.now(UTC)
        since = query.get("since") or until - DEFAULT_WINDOW
        try:
            window = volume_window(since, until, query["step"])
        except ValueError as error:
            abort(422, message=str(error), errors={"query": {"step": [str(error)]}})
        return traffic_volume(window)
