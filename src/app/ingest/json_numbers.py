"""JSON numbers are stored exactly as sent, or refused: never rounded on the way in.

orjson, which reads every request body, turns an integer beyond 64 bits into a float and rounds a
number with more digits than a double holds, silently. PostgreSQL's JSONB would keep more, but it
writes -0.0 as 0.0. The rule The Eye keeps (README, "What it promises"):

- integers from -2**63 to 2**63 - 1 are kept exactly (what a bigint, a Java long or a ClickHouse
  Int64 downstream can hold);
- other numbers are kept when the 64-bit float they are read as is the same decimal value as the
  text sent (so 0.1, 1e-300 and 5e-324 are kept; 0.1000000000000000000001 is not);
- negative zero is refused: JSONB keeps no sign on zero, so it would come back as 0.0.

Anything else is refused with a 422 naming the field. Checking every number costs a second parse,
so it runs only when the body holds text that could be such a number (a long run of digits, a
three-digit exponent or a negative zero): an ordinary event never pays for it.
"""

import json
import re
from decimal import Decimal

import orjson

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Every number orjson could change: 16+ digits (an integer past 2**63 has 19; a double keeps 15
# significant digits for sure), an exponent of three digits (underflow), or a signed zero.
_MAY_BE_INEXACT = re.compile(rb"[0-9.]{16,}|[eE][-+]?[0-9]{3}|-0[.eE]")


class InexactNumber:
    """A number of a request body that would not be stored as sent: validation refuses its item."""

    __slots__ = ("text", "reason")

    def __init__(self, text: str, reason: str):
        self.text = text
        self.reason = reason

    def __repr__(self) -> str:
        return self.text


def loads(raw: bytes):
    """The body parsed as orjson parses it, with each number it would change as an InexactNumber.

    Raises orjson.JSONDecodeError for a body that is not JSON (orjson is the judge of syntax).
    """
    value = orjson.loads(raw)
    if _MAY_BE_INEXACT.search(raw) is None:
        return value
    # orjson accepted the text, so it is strict JSON: the standard parser reads the same structure,
    # and hands us each number's own text.
    return json.loads(raw, parse_int=_integer, parse_float=_float)


def _integer(text: str):
    # A long text is never within 64 bits; skipping int() also spares Python's digit limit.
    if len(text) <= 20:
        number = int(text)
        if INT64_MIN <= number <= INT64_MAX:
            return number
    return InexactNumber(text, "An integer beyond 64 bits (-2^63 to 2^63-1) is not kept exactly: "
                               "send it as a string.")


def _float(text: str):
    number = float(text)
    if number == 0 and text.startswith("-"):
        return InexactNumber(text, "Negative zero is not kept (it would be stored as 0.0): send 0.0.")
    # Most texts are the float's own shortest form (a browser's epoch milliseconds with three
    # decimals, 1764525123456.789, are): then the value is kept, without the decimal comparison.
    if repr(number) == text:
        return number
    if number != number or number in (float("inf"), float("-inf")) or Decimal(text) != Decimal(repr(number)):
        return InexactNumber(text, "More digits or a wider range than a 64-bit float keeps: "
                                   "send it rounded, or as a string.")
    return number


def as_sent(value):
    """orjson's `default` hook: an InexactNumber is written as the text the client sent."""
    if isinstance(value, InexactNumber):
        return orjson.Fragment(value.text)
    raise TypeError


def unencodable_errors(value) -> dict:
    """Field errors, keyed by path, for each value of `value` that JSON cannot carry exactly."""
    errors: dict = {}
    _collect(value, errors, ())
    return errors


def _collect(value, errors: dict, path: tuple) -> None:
    if isinstance(value, dict):
        for key, child in value.items():
            if not isinstance(key, str):
                _place(errors, path + (str(key),), "Object keys must be strings.")
            _collect(child, errors, path + (str(key),))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            _collect(child, errors, path + (str(index),))
    elif isinstance(value, InexactNumber):
        _place(errors, path, value.reason)
    elif isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
        _place(errors, path, "An integer beyond 64 bits (-2^63 to 2^63-1) is not kept exactly: send it as a string.")
    elif value is not None and not isinstance(value, str | int | float | bool):
        _place(errors, path, f"Not a JSON value ({type(value).__name__}).")


def _place(errors: dict, path: tuple, message: str) -> None:
    if not path:
        errors.setdefault("_schema", []).append(message)
        return
    node = errors
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node.setdefault(path[-1], []).append(message)


def string_keys(errors):
    """Error messages with every key a string: marshmallow keys a list's errors by integer index.

    The client's JSON answer and the errors store then show the same keys ("1", not 1), and the
    message encoder, which refuses non-string keys, can always carry them.
    """
    if isinstance(errors, dict):
        return {str(key): string_keys(value) for key, value in errors.items()}
    if isinstance(errors, list):
        return [string_keys(value) for value in errors]
    return errors
