"""Mouse movement: batches of sampled pointer positions."""

import math
import time

from marshmallow import Schema, ValidationError, fields, validate, validates

from app.event_types.fields import StrictNumber

MAX_POINTS = 500
# No screen is wider, and a sum of huge steps would overflow to infinity.
COORDINATE_LIMIT = 1e7
# How far ahead of the server's clock a point's `t` may be (clients' clocks drift a little).
POINT_CLOCK_SKEW_MS = 5 * 60 * 1000


class MousePoint(Schema):
    x = StrictNumber(required=True, validate=validate.Range(min=-COORDINATE_LIMIT, max=COORDINATE_LIMIT),
                     metadata={"description": "CSS pixels"})
    y = StrictNumber(required=True, validate=validate.Range(min=-COORDINATE_LIMIT, max=COORDINATE_LIMIT),
                     metadata={"description": "CSS pixels"})
    t = StrictNumber(
        required=True,
        validate=validate.Range(min=0),
        metadata={"description": "epoch milliseconds"},
    )


class Viewport(Schema):
    w = StrictNumber(required=True, validate=validate.Range(min=0))
    h = StrictNumber(required=True, validate=validate.Range(min=0))


def _is_valid_point(point) -> bool:
    """The MousePoint schema's rules, checked directly (see MousePoints)."""
    if type(point) is not dict or len(point) != 3:
        return False
    x, y, t = point.get("x"), point.get("y"), point.get("t")
    return (
        type(x) in (int, float) and type(y) in (int, float) and type(t) in (int, float)
        and -COORDINATE_LIMIT <= x <= COORDINATE_LIMIT and -COORDINATE_LIMIT <= y <= COORDINATE_LIMIT
        and 0 <= t < math.inf
    )


class MousePoints(fields.List):
    """A list of MousePoint, documented as such, with a fast path for the common, valid case.

    Profiled, marshmallow's Nested load of each point was the largest single cost of a web process
    validating mixed batches; a valid list is now recognised by a direct check of the same rules,
    and anything else goes through the schema, which names each error. (A test checks that both
    agree.)
    """

    def __init__(self, **kwargs):
        super().__init__(fields.Nested(MousePoint), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if type(value) is list and all(_is_valid_point(point) for point in value):
            return [dict(point) for point in value]
        return super()._deserialize(value, attr, data, **kwargs)


class MouseMovePayload(Schema):
    """`mouse / move`: 1–500 pointer positions of one browser tab."""

    points = MousePoints(required=True, validate=validate.Length(min=1, max=MAX_POINTS))
    viewport = fields.Nested(Viewport)
    tab = fields.String(validate=validate.Length(min=1, max=64))

    @validates("points")
    def points_not_in_future(self, points, **kwargs):
        latest = time.time() * 1000 + POINT_CLOCK_SKEW_MS
        # Marshmallow runs this hook even when some points failed to load (they come here as sent,
        # possibly without a numeric `t`): those already have their own error, so skip them here.
        future = [
            i for i, point in enumerate(points)
            if isinstance(point, dict) and type(point.get("t")) in (int, float) and point["t"] > latest
        ]
        if future:
            raise ValidationError(f"Points {future[:10]} have a `t` in the future.")
