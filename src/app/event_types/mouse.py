"""Mouse movement: batches of sampled pointer positions."""

import time

from marshmallow import Schema, ValidationError, fields, validate, validates

from app.event_types.fields import StrictNumber

MAX_POINTS = 500
# How far ahead of the server's clock a point's `t` may be (clients' clocks drift a little).
POINT_CLOCK_SKEW_MS = 5 * 60 * 1000


class MousePoint(Schema):
    # Bounded: no screen is wider, and a sum of huge steps would overflow to infinity.
    x = StrictNumber(required=True, validate=validate.Range(min=-1e7, max=1e7), metadata={"description": "CSS pixels"})
    y = StrictNumber(required=True, validate=validate.Range(min=-1e7, max=1e7), metadata={"description": "CSS pixels"})
    t = StrictNumber(
        required=True,
        validate=validate.Range(min=0),
        metadata={"description": "epoch milliseconds"},
    )


class Viewport(Schema):
    w = StrictNumber(required=True, validate=validate.Range(min=0))
    h = StrictNumber(required=True, validate=validate.Range(min=0))


class MouseMovePayload(Schema):
    """`mouse / move`: 1–500 pointer positions of one browser tab."""

    points = fields.List(
        fields.Nested(MousePoint), required=True, validate=validate.Length(min=1, max=MAX_POINTS)
    )
    viewport = fields.Nested(Viewport)
    tab = fields.String(validate=validate.Length(min=1, max=64))

    @validates("points")
    def points_not_in_future(self, points, **kwargs):
        latest = time.time() * 1000 + POINT_CLOCK_SKEW_MS
        future = [i for i, point in enumerate(points) if point["t"] > latest]
        if future:
            raise ValidationError(f"Points {future[:10]} have a `t` in the future.")
