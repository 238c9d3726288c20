"""The compiled checks judge as marshmallow does: they never accept what it refuses, and verdicts stay the same."""

import json
import re
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError, fields, validate, validates

from app.event_types import launch_registry
from app.event_types.json_schema import NotExpressible, compile_fast_check, to_json_schema
from app.event_types.mouse import MouseMovePayload, MousePoint, Viewport
from app.event_types.page import PageviewPayload
from app.ingest import validation as event_validation
from app.ingest.validation import validate_event

registry = launch_registry()  # the registry every app is made with

MAX_SKEW = 300.0
NOW = datetime.now(UTC)


def outcome(item, *, compiled: bool, strict_types: bool):
    """The verdict, with a made-up event_id masked."""
    verdict = validate_event(item, registry, now=NOW, max_skew=MAX_SKEW, strict_types=strict_types,
                             compiled=compiled)
    if verdict.accepted and "event_id" not in item:
        assert str(uuid.UUID(verdict.event["event_id"])) == verdict.event["event_id"]
        verdict.event["event_id"] = "made up"
    return verdict


def verdicts(item, *, strict_types: bool = False) -> tuple:
    """The outcome with the compiled checks, and the one of marshmallow alone."""
    return tuple(outcome(item, compiled=compiled, strict_types=strict_types) for compiled in (True, False))


# --- What a client might send: mostly near-valid, with the mutations clients and fuzzers make. ---

_UUID = uuid.UUID("e2085be5-9137-4e4e-80b5-f1ffddc25423")
uuids = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.sampled_from([f"{{{_UUID}}}", f"urn:uuid:{_UUID}", _UUID.hex, str(_UUID).upper()[:35] + "g", str(_UUID) + "\n",
                     f" {_UUID}", str(_UUID)[:-1], "not-a-uuid", "", str(_UUID).replace("-", "_", 1)]),
    st.sampled_from([None, True, 42, 4.2, [], {}]),
)
timestamps = st.one_of(
    st.sampled_from([
        "2021-01-01 09:15:27.243860", "2021-01-01T09:15:27", "2021-01-01T09:15:27Z", "2021-01-01 09:15:27+02:00",
        "2021-01-01T09:15:27-05:00", "2021-01-01 09:15", "2021-01-01", "2021-01-01T24:00:00", "2021-13-01 00:00",
        "0001-01-01T00:00:00", "0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59", "2021-01-01T09:15:27+25:00",
        "2021-01-01T09:15:27.1234567", "2021-01-01 09:15:27\n", "yesterday", "", "2999-01-01 09:15:27",
        "２０２１-01-01 09:15",
    ]),
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)).map(lambda d: d.isoformat(sep=" ")),
    st.sampled_from([None, 1609492527, True]),
)
long_text = st.sampled_from(["x" * 64, "x" * 65, "x" * 256, "x" * 257])
hosts = st.one_of(
    st.sampled_from(["www.example.com", "shop.example.com:8080", "localhost", "10.0.0.1", "a.com.", "a.com\n",
                     "a.com:123456", "-bad.com", "a..b", "ex ample.com", "", "Ünïcode.com", "a" * 64 + ".com"]),
    st.from_regex(r"\A[a-z0-9.:-]{1,20}\Z"),
    st.sampled_from([42, None, True, ["a.com"]]),
)
paths = st.one_of(
    st.sampled_from(["/", "/x?y=1#z", "x", "", "//", "/\n", " /", "/" * 2048, "/" * 2049]),
    st.text(max_size=8).map(lambda t: "/" + t),
    st.sampled_from([1, None, False, ["/"]]),
)
elements = st.one_of(st.sampled_from(["buy button", ""]), long_text, st.sampled_from([1, None]))
# What orjson.loads gives: 64-bit integers (larger ones come as floats), finite floats.
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=5)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=6,
)
forms = st.one_of(st.dictionaries(st.text(max_size=4), json_values, max_size=3), json_values)
numbers = st.one_of(st.integers(-(2**60), 2**60), st.floats(), st.booleans(), st.sampled_from([1e7, 1e7 + 1, -0.0, "10"]))
points = st.one_of(
    st.fixed_dictionaries({"x": numbers, "y": numbers, "t": st.floats(0, 1.7e12) | numbers}),
    st.dictionaries(st.sampled_from(["x", "y", "t", "z"]), numbers, max_size=4),
)
payload_fields = {
    ("page interaction", "pageview"): {"host": hosts, "path": paths},
    ("page interaction", "cta click"): {"host": hosts, "path": paths, "element": elements},
    ("form interaction", "submit"): {"host": hosts, "path": paths, "form": forms},
    ("mouse", "move"): {
        "points": st.lists(points, max_size=3) | st.sampled_from([[], None, "points"]),
        "viewport": st.fixed_dictionaries({"w": numbers, "h": numbers}) | st.sampled_from([None, {}]),
        "tab": st.one_of(st.sampled_from(["tab-1", ""]), long_text, st.just(None)),
    },
}
valid_hosts = st.sampled_from(["www.example.com", "shop.example.com:8080", "localhost", "10.0.0.1"])
valid_paths = st.text(max_size=8).map(lambda t: "/" + t)
valid_payloads = {
    ("page interaction", "pageview"): st.fixed_dictionaries({"host": valid_hosts, "path": valid_paths}),
    ("page interaction", "cta click"): st.fixed_dictionaries(
        {"host": valid_hosts, "path": valid_paths, "element": st.text(min_size=1, max_size=8)}),
    ("form interaction", "submit"): st.fixed_dictionaries(
        {"host": valid_hosts, "path": valid_paths, "form": st.dictionaries(st.text(max_size=4), json_values)}),
    ("mouse", "move"): st.fixed_dictionaries(
        {"points": st.lists(st.fixed_dictionaries({"x": st.integers(0, 2000), "y": st.integers(0, 2000),
                                                   "t": st.floats(0, 1.7e12)}), min_size=1, max_size=3)},
        optional={"viewport": st.fixed_dictionaries({"w": st.integers(0, 4000), "h": st.integers(0, 4000)}),
                  "tab": st.text(min_size=1, max_size=8)}),
}
extra_values = st.sampled_from([None, 1, "x", True, [], {}])
seldom = st.sampled_from([False] * 7 + [True])


@st.composite
def near(draw, valid, mutations: dict) -> dict:
    """A valid dict, then up to two fields swapped for a mutation, perhaps one dropped or an unknown one added."""
    value = dict(draw(valid))
    for key in draw(st.lists(st.sampled_from(sorted(mutations)), max_size=2, unique=True)):
        value[key] = draw(mutations[key])
    if value and draw(seldom):
        del value[draw(st.sampled_from(sorted(value)))]
    if draw(seldom):
        value[draw(st.sampled_from(["extra", "colour", "Host"]))] = draw(extra_values)
    return value


def payloads(key: tuple[str, str]):
    """`data` for a type: valid, near-valid, or not a dict at all."""
    if key not in payload_fields:
        return st.dictionaries(st.text(max_size=3), json_values, max_size=3)
    return st.one_of(valid_payloads[key], near(valid_payloads[key], payload_fields[key]),
                     st.sampled_from([None, [], "data"]))


@st.composite
def events(draw) -> dict:
    key = draw(st.sampled_from([*sorted(payload_fields), ("custom", "thing"), ("", "x")]))
    category, name, data = *key, draw(payloads(key))
    valid = st.fixed_dictionaries({
        "session_id": st.uuids().map(str), "category": st.just(category), "name": st.just(name), "data": st.just(data),
        "timestamp": st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2026, 1, 1)).map(str),
    }, optional={"event_id": st.uuids().map(str)})
    return draw(near(valid, {
        "event_id": uuids, "session_id": uuids, "category": long_text | st.just(None), "name": long_text | st.just(3),
        "data": st.sampled_from([None, [], "data", {}]), "timestamp": timestamps,
    }))


def pageview(**changes) -> dict:
    return {"session_id": str(_UUID), "category": "page interaction", "name": "pageview",
            "data": {"host": "www.example.com", "path": "/"}, "timestamp": "2021-01-01 09:15:27", **changes}


@settings(max_examples=800, deadline=None)
@example(pageview(timestamp="2021-01-01T24:00:00"), False)  # the shape of a time, but no instant
@example(pageview(session_id=str(_UUID).upper(), event_id=str(_UUID).upper()), False)
@example(pageview(session_id=f"{{{_UUID}}}"), False)
@example(pageview(data={"host": "www.example.com\n", "path": "/"}), False)  # Python's `$` allows the newline
@given(events(), st.booleans())
def test_verdicts_agree_with_marshmallow_alone(item, strict_types):
    fast, reference = verdicts(item, strict_types=strict_types)
    assert fast == reference


def test_the_common_event_takes_the_compiled_path(sample):
    item = sample("pageview")
    assert event_validation.envelope_check()(item)  # a change to the envelope the table does not know shows here
    assert registry.fast_check_for("page interaction", "pageview")(item["data"])


def test_every_launch_type_but_mouse_move_has_a_compiled_check():
    checked = {key for key, _ in registry if registry.fast_check_for(*key) is not None}
    assert checked == {("page interaction", "pageview"), ("page interaction", "cta click"), ("form interaction", "submit")}


# --- The converter: exact where it knows, NotExpressible elsewhere. ---

def test_pageview_payload_as_json_schema():
    host = PageviewPayload().fields["host"].validators[0].regex.pattern
    assert to_json_schema(PageviewPayload) == {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "host": {"type": "string", "pattern": "^(?:" + host.replace("$", r"(?=\n?\Z)") + ")"},
            "path": {"type": "string", "minLength": 1, "maxLength": 2048, "pattern": "^(?:^/)"},
        },
        "additionalProperties": False,
        "required": ["host", "path"],
    }


class WithHook(Schema):
    tab = fields.String()

    @validates("tab")
    def tab_is_known(self, value, **kwargs):
        if value != "main":
            raise ValidationError("Unknown tab.")


class UnknownField(Schema):
    at = fields.DateTime()


def one_field(field: fields.Field) -> type[Schema]:
    return Schema.from_dict({"value": field})


@pytest.mark.parametrize("schema", [
    WithHook, UnknownField, MouseMovePayload,
    one_field(fields.String(allow_none=True)),
    one_field(fields.String(load_default="x")),
    one_field(fields.String(data_key="Value")),
    one_field(fields.String(attribute="other")),
    one_field(fields.String(validate=validate.Length(equal=3))),
    one_field(fields.String(validate=validate.OneOf(["a"]))),
    one_field(fields.String(validate=validate.Regexp("a", flags=re.IGNORECASE))),
    one_field(fields.String(validate=validate.Regexp("(?m:a$)"))),
    one_field(fields.Integer(strict=True)),
    one_field(fields.Float(allow_nan=True)),
    one_field(fields.Dict(keys=fields.String(), values=fields.Integer())),
    one_field(fields.Email()),
    one_field(fields.Nested(MousePoint, many=True)),
    one_field(fields.Nested(WithHook)),
])
def test_not_expressible(schema):
    with pytest.raises(NotExpressible):
        to_json_schema(schema)
    assert compile_fast_check(schema) is None


def test_unknown_include_is_not_expressible():
    class Lenient(Schema):
        class Meta:
            unknown = "include"
        tab = fields.String()

    with pytest.raises(NotExpressible):
        to_json_schema(Lenient)


def accepts(schema: Schema, data) -> bool:
    try:
        schema.load(data)
        return True
    except ValidationError:
        return False


awkward_numbers = st.one_of(
    st.integers(-(2**64), 2**64), st.floats(), st.booleans(), st.text(max_size=3), st.none(),
    st.sampled_from([2**53, 2**53 + 1, -(2**53) - 1, 2**60 - 1, 1e7, 1e7 + 1, -1e7, 0, -0.0, 1e308, "10", "nan",
                     float("nan"), float("inf"), -float("inf")]),
)
extra_keys = st.dictionaries(st.sampled_from(["z", "x"]), awkward_numbers, max_size=1)


@settings(max_examples=500, deadline=None)
@given(st.one_of(
    st.tuples(st.just(MousePoint), st.fixed_dictionaries({"x": awkward_numbers, "y": awkward_numbers,
                                                          "t": awkward_numbers})),
    st.tuples(st.just(Viewport), st.fixed_dictionaries({"w": awkward_numbers, "h": awkward_numbers})),
), extra_keys)
def test_numbers_are_never_more_permissive(case, extra):
    schema, data = case
    if compile_fast_check(schema)({**data, **extra}):
        assert accepts(schema(), {**data, **extra})


NUMBERS = Schema.from_dict({
    "free": fields.Float(),
    "exclusive": fields.Float(validate=validate.Range(min=0, max=1, min_inclusive=False, max_inclusive=False)),
    # Below 2**60, yet float(2**60 - 1) is 2**60: the compiled check must not say yes where Range says no.
    "below": fields.Float(validate=validate.Range(max=2.0**60, max_inclusive=False)),
    "whole": fields.Integer(validate=[validate.Range(min=-3), validate.Range(max=3)]),
    "items": fields.List(fields.String(validate=validate.Length(max=2)), validate=validate.Length(min=1, max=2)),
})


@settings(max_examples=500, deadline=None)
@example({"below": 2**60 - 1})
@example({"free": float("nan")})
@example({"free": float("inf")})
@example({"whole": 3.0})
@given(st.fixed_dictionaries({}, optional={
    "free": awkward_numbers, "exclusive": awkward_numbers, "below": awkward_numbers, "whole": awkward_numbers,
    "items": st.lists(st.text(max_size=3) | st.none(), max_size=3),
}))
def test_ranges_integers_and_lists_are_never_more_permissive(data):
    if compile_fast_check(NUMBERS)(data):
        assert accepts(NUMBERS(), data)


@pytest.mark.parametrize("pattern", [r"a$", r"[$]", r"a\$", r"a\\$", r"a(?!$)", r"(?=.{1,3}(:|$))[a:\n]+$", r"[]$]x",
                                     r"[^]$]+", r"a|b$"])
@pytest.mark.parametrize("text", ["a", "a\n", "a\n\n", "$", "a$", "a\\", "a\\\n", "]x", "$x", "b", "b\n", "a:", "ab", "xb",
                                  "x]x"])
def test_patterns_keep_pythons_meaning(pattern, text):
    check = compile_fast_check(one_field(fields.String(validate=validate.Regexp(pattern))))
    assert check({"value": text}) == (re.match(pattern, text) is not None)


# --- The shared samples: the same answers as before, through the real ingest door. ---

@pytest.mark.parametrize("name,status,kind", [
    ("pageview", 202, None), ("cta_click", 202, None), ("form_submit", 202, None), ("mouse_move", 202, None),
    ("bad_future_timestamp", 422, "future_timestamp"),
    ("bad_unexpected_field", 422, "invalid_payload"),
    ("bad_wrong_types", 422, "invalid_event"),
    ("bad_trailing_comma", 400, None),
])
def test_samples_get_the_same_answers(embedded_client, embedded_key, sample, name, status, kind):
    response = embedded_client.post("/api/v1/events", data=sample(name, raw=True),
                                    headers={"X-API-Key": embedded_key("ingest")}, content_type="application/json")
    assert response.status_code == status, response.json
    if kind:
        assert response.json["kind"] == kind
    try:
        item = json.loads(sample(name, raw=True))
    except json.JSONDecodeError:
        return
    fast, reference = verdicts(item)
    assert fast == reference
