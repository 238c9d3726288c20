"""Numbers are read exactly as sent, or flagged so that validation refuses them (json_numbers)."""

from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.ingest import json_numbers
from app.ingest.json_numbers import InexactNumber

NUMBER_TEXTS = st.from_regex(r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][-+]?[0-9]{1,3})?", fullmatch=True)


def read_number(text: str):
    return json_numbers.loads(b'{"n": ' + text.encode() + b"}")["n"]


@given(NUMBER_TEXTS)
def test_a_number_is_kept_only_if_it_is_the_same_value_as_sent(text):
    """The property: whatever comes back as a number is the very value sent; the rest is flagged."""
    try:
        value = read_number(text)
    except orjson.JSONDecodeError:
        return  # beyond a double's range: a 400, not a silent change
    if isinstance(value, InexactNumber):
        assert value.text == text
        return
    assert Decimal(repr(value)) == Decimal(text)
    assert not (value == 0 and text.startswith("-") and isinstance(value, float))


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_double_written_shortest_is_kept(number):
    value = read_number(repr(number))
    if number == 0 and str(number).startswith("-"):
        assert isinstance(value, InexactNumber)
    else:
        assert value == number and type(value) is float


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_every_64_bit_integer_is_kept(number):
    value = read_number(str(number))
    assert value == number and type(value) is int


@pytest.mark.parametrize("text", ["9223372036854775808", "-9223372036854775809", "18446744073709551615",
                                  "18446744073709551616", "123456789012345678901234567890", "1" * 300,
                                  "0.1000000000000000000001", "1e-400", "-0.0", "-0e0"])
def test_numbers_that_would_change_are_flagged(text):
    assert isinstance(read_number(text), InexactNumber)


def test_flagged_numbers_are_written_back_as_sent_and_named_by_path():
    body = json_numbers.loads(b'{"data": {"n": 123456789012345678901234567890, "p": [1, {"x": -0.0}]}}')
    as_sent = orjson.dumps(body, default=json_numbers.as_sent)
    assert as_sent == b'{"data":{"n":123456789012345678901234567890,"p":[1,{"x":-0.0}]}}'
    errors = json_numbers.unencodable_errors(body)
    assert set(errors["data"]) == {"n", "p"} and list(errors["data"]["p"]["1"]) == ["x"]


def test_an_ordinary_body_takes_the_fast_path_only(monkeypatch):
    monkeypatch.setattr(json_numbers.json, "loads", lambda *a, **k: pytest.fail("slow path taken"))
    assert json_numbers.loads(b'{"x": 10.5, "t": 1700000000000, "y": -3, "z": 0.25}')["t"] == 1700000000000


def test_string_keys_turns_marshmallow_indexes_into_strings():
    assert json_numbers.string_keys({"points": {1: {"x": ["bad"]}}}) == {"points": {"1": {"x": ["bad"]}}}
