"""MousePoints' fast path accepts exactly what the MousePoint schema accepts."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError, fields

from app.event_types.mouse import MousePoint, MousePoints


class Reference(Schema):
    points = fields.List(fields.Nested(MousePoint))


class Fast(Schema):
    points = MousePoints()


numbers = st.one_of(st.integers(-10**8, 10**8), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                    st.just(1e7), st.just(-1e7), st.just(1e7 + 1), st.just(0), st.just(-0.0))
values = st.one_of(numbers, st.text(max_size=3), st.none())
points = st.one_of(
    st.fixed_dictionaries({"x": numbers, "y": numbers, "t": numbers}),
    st.dictionaries(st.sampled_from(["x", "y", "t", "z"]), values, max_size=4),
    values,
)


def accepts(schema: Schema, data) -> bool:
    try:
        schema.load({"points": data})
        return True
    except ValidationError:
        return False


@settings(max_examples=400, deadline=None)
@given(st.lists(points, max_size=4))
def test_fast_path_agrees_with_the_schema(data):
    assert accepts(Fast(), data) == accepts(Reference(), data)


def test_errors_still_name_each_field():
    try:
        Fast().load({"points": [{"x": 1, "y": 2, "t": 3}, {"x": "a", "y": math.inf, "t": -1, "q": 0}]})
    except ValidationError as exc:
        assert set(exc.messages["points"][1]) == {"x", "y", "t", "q"}
    else:
        raise AssertionError("an invalid point was accepted")
