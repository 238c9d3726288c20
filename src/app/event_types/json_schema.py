"""Marshmallow schemas as JSON Schema, compiled into a cheap check of the common, valid event.

Only what a closed table knows to mean exactly the same is translated; anything else raises NotExpressible.
So a compiled check never accepts a JSON value (what orjson.loads gives) that marshmallow refuses. It may
refuse more (a braced UUID, the string "10" for a Float): marshmallow then judges, and names the errors.
"""

import math
import re
from collections.abc import Callable, Mapping

import fastjsonschema
from marshmallow import RAISE, Schema, fields, missing, validate

from app.event_types.fields import StrictNumber

# The canonical, hyphenated spelling: a subset of what uuid.UUID() reads, and lowercasing it gives
# str(uuid.UUID(value)). Used with `.match`, so anchored at the start.
CANONICAL_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z"
# Ours override fastjsonschema's own formats of the same name.
FORMATS: dict[str, str | Callable[[str], bool]] = {"uuid": CANONICAL_UUID}

# Floats hold every integer up to 2**53: within it Range's comparisons of float(value) give the same answer
# as JSON Schema's of the value itself. NaN compares false with everything, so it satisfies the impossible
# range under `not`, which refuses it; the bounds refuse ±inf (marshmallow's Float refuses all three).
_FINITE = {"minimum": -(2**53), "maximum": 2**53, "not": {"minimum": 1, "maximum": 0}}

# A subclass of a known field that defines only these (an `__init__` passing validators, say) behaves like it.
# (The rest is bookkeeping of Python, typing, abc and copy.)
_INERT = {"__init__", "default_error_messages", "__doc__", "__module__", "__qualname__", "__firstlineno__",
          "__static_attributes__", "__annotations__", "__dict__", "__weakref__", "__parameters__", "__orig_bases__",
          "__slotnames__", "__abstractmethods__", "_abc_impl"}
_KNOWN_FIELDS = (StrictNumber, fields.Float, fields.Integer, fields.String, fields.UUID, fields.Dict,
                 fields.Nested, fields.List)
# A Schema subclass may declare fields and Meta; anything else it defines (hooks, overrides) is behaviour.
_SCHEMA_INERT = (_INERT - {"__init__"}) | {"Meta", "opts", "_declared_fields", "_hooks"}

# Python's `$` (which Regexp's re.match uses) also matches before a final newline; JSON Schema's does not.
_PYTHON_END = r"(?=\n?\Z)"
# Scoped flags that change what `$` or the pattern's layout mean (global ones show in `regex.flags`).
_SCOPED_M_OR_X = re.compile(r"\(\?[aiLmsux-]*[mx][aiLmsux-]*:")


class NotExpressible(Exception):
    """The schema uses something whose meaning this module cannot state exactly in JSON Schema."""


def to_json_schema(schema: Schema | type[Schema], *, extra_fields: Mapping[type, dict] | None = None) -> dict:
    """The JSON Schema (draft 7) that accepts a subset of what `schema.load` accepts; NotExpressible otherwise.

    `extra_fields` names further field classes (exactly those classes, without validators) and their JSON Schema,
    for callers that own a field this module cannot import.
    """
    return {"$schema": "http://json-schema.org/draft-07/schema#", **_object(schema, extra_fields or {})}


def compile_fast_check(
    schema: Schema | type[Schema],
    *,
    extra_fields: Mapping[type, dict] | None = None,
    formats: Mapping[str, str | Callable[[str], bool]] | None = None,
) -> Callable[[object], bool] | None:
    """A compiled check, True only for data `schema.load` accepts; None when the schema is not expressible.

    Compiling generates and runs Python source (milliseconds): do it once per process, not per request.
    """
    try:
        definition = to_json_schema(schema, extra_fields=extra_fields)
    except NotExpressible:
        return None
    validate_data = fastjsonschema.compile(
        definition, formats={**FORMATS, **(formats or {})}, use_default=False, detailed_exceptions=False
    )

    def check(data) -> bool:
        try:
            validate_data(data)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    return check


def _object(schema: Schema | type[Schema], extra_fields: Mapping[type, dict], unknown=None) -> dict:
    """A schema as a closed object; `unknown` is a Nested field's override of the schema's own."""
    instance = schema() if isinstance(schema, type) else schema
    _refuse_behaviour(type(instance), Schema, _SCHEMA_INERT)
    if instance.many or instance.partial or (unknown or instance.unknown) != RAISE:
        raise NotExpressible(f"{type(instance).__name__}: many, partial or unknown other than RAISE")
    properties = {name: _field(field, extra_fields) for name, field in instance.load_fields.items()}
    required = [name for name, field in instance.load_fields.items() if field.required]
    return {"type": "object", "properties": properties, "additionalProperties": False,
            **({"required": required} if required else {})}


def _refuse_behaviour(cls: type, base: type, inert: set[str]) -> None:
    """NotExpressible if `cls`, or a class between it and `base`, defines more than `inert` names."""
    for klass in cls.__mro__:
        if klass is base:
            return
        if extra := set(vars(klass)) - inert:
            raise NotExpressible(f"{klass.__name__} defines {sorted(extra)}")
    raise NotExpressible(f"{cls.__name__} is not a {base.__name__}")


def _known_base(cls: type) -> type:
    """The table's field class that `cls` is, or extends with validators only; NotExpressible otherwise."""
    for klass in cls.__mro__:
        if klass in _KNOWN_FIELDS:
            return klass
        if extra := set(vars(klass)) - _INERT:
            raise NotExpressible(f"{klass.__name__} defines {sorted(extra)}")
    raise NotExpressible(f"{cls.__name__} is not a known field")


def _field(field: fields.Field, extra_fields: Mapping[type, dict]) -> dict:
    name = type(field).__name__
    if field.allow_none or field.load_default is not missing or field.data_key is not None \
            or field.attribute is not None:
        raise NotExpressible(f"{name}: allow_none, load_default, data_key or attribute")
    if type(field) in extra_fields:
        _no_validators(field)
        return dict(extra_fields[type(field)])
    base = _known_base(type(field))
    if base is fields.String:
        return _with_validators({"type": "string"}, field, {validate.Length: _string_length, validate.Regexp: _pattern})
    if base in (StrictNumber, fields.Float):
        if field.allow_nan:
            raise NotExpressible(f"{name}: allow_nan")
        return _with_validators({"type": "number", "allOf": [_FINITE]}, field, {validate.Range: _range})
    if base is fields.Integer:
        # Strict refuses 1.0, which draft 7's integer accepts; the lenient one takes any number.
        if field.strict:
            raise NotExpressible(f"{name}: strict")
        return _with_validators({"type": "integer"}, field, {validate.Range: _range})
    if base is fields.List:
        # JSON Schema's array is a list: a subset of the collections marshmallow's List takes.
        items = {"type": "array", "items": _field(field.inner, extra_fields)}
        return _with_validators(items, field, {validate.Length: _items_length})
    _no_validators(field)
    if base is fields.UUID:
        return {"type": "string", "format": "uuid"}
    if base is fields.Dict:
        keys = field.key_field
        if field.value_field is not None or (keys is not None and (type(keys) is not fields.String or keys.validators)):
            raise NotExpressible(f"{name}: values, or keys other than a plain String")
        return {"type": "object"}
    if base is fields.Nested:
        if field.many or field.unknown not in (None, RAISE):
            raise NotExpressible(f"{name}: many, or unknown other than RAISE")
        return _object(field.schema, extra_fields, unknown=field.unknown)
    raise AssertionError(f"{base.__name__} is in the table but not handled")


def _no_validators(field: fields.Field) -> None:
    if field.validators:
        raise NotExpressible(f"{type(field).__name__}: validators on a field that takes none here")


def _with_validators(definition: dict, field: fields.Field, known: Mapping[type, Callable[[object], dict]]) -> dict:
    """`definition` with the keywords of each of the field's validators (exactly the classes in `known`)."""
    for validator in field.validators:
        convert = known.get(type(validator))
        if convert is None:
            raise NotExpressible(f"{type(field).__name__}: validator {type(validator).__name__}")
        keywords = convert(validator)
        if keywords.keys() & definition.keys():
            # Two validators of one kind (say two Regexps): each must hold.
            definition.setdefault("allOf", []).append(keywords)
        else:
            definition.update(keywords)
    return definition


def _length(validator: validate.Length, low: str, high: str) -> dict:
    if validator.equal is not None:
        raise NotExpressible("Length(equal=...)")
    return {key: value for key, value in ((low, validator.min), (high, validator.max)) if value is not None}


def _string_length(validator: validate.Length) -> dict:
    return _length(validator, "minLength", "maxLength")


def _items_length(validator: validate.Length) -> dict:
    return _length(validator, "minItems", "maxItems")


def _range(validator: validate.Range) -> dict:
    keywords = {}
    for bound, inclusive, inclusive_key, exclusive_key in (
        (validator.min, validator.min_inclusive, "minimum", "exclusiveMinimum"),
        (validator.max, validator.max_inclusive, "maximum", "exclusiveMaximum"),
    ):
        if bound is None:
            continue
        if type(bound) not in (int, float) or not math.isfinite(bound):
            raise NotExpressible(f"Range bound {bound!r}")
        keywords[inclusive_key if inclusive else exclusive_key] = bound
    return keywords


def _pattern(validator: validate.Regexp) -> dict:
    regex = validator.regex
    if not isinstance(regex.pattern, str) or regex.flags != re.UNICODE or _SCOPED_M_OR_X.search(regex.pattern):
        raise NotExpressible(f"Regexp {regex!r}: bytes, or flags")
    # Regexp uses re.match, anchored at the start only; fastjsonschema's pattern is a search.
    pattern = "^(?:" + _python_dollars(regex.pattern) + ")"
    try:
        re.compile(pattern)
    except re.error as exc:
        raise NotExpressible(f"Regexp {regex!r}: {exc}") from None
    return {"pattern": pattern}


def _python_dollars(pattern: str) -> str:
    """`pattern` with each unescaped `$` spelt so that fastjsonschema keeps Python's meaning.

    fastjsonschema turns every `$` not preceded by a backslash into `\\Z`, even inside a character class
    (where it is a literal) or a negative lookahead (where the stricter anchor accepts more). Outside a class
    it becomes the lookahead that says what Python's `$` means; inside one, an escaped literal.
    """
    out, i, in_class = [], 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        i += 1
        if char == "[" and not in_class:
            in_class = True
            # A `]` first in a class (after an optional `^`) is a literal, not its end.
            opening = re.match(r"\^?\]?", pattern[i:]).group()
            out.append(char + opening)
            i += len(opening)
            continue
        if char == "]" and in_class:
            in_class = False
        elif char == "$":
            char = r"\$" if in_class else _PYTHON_END
        out.append(char)
    return "".join(out)
