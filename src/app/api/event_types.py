"""The event-type registry, as JSON Schemas (read scope)."""

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from app.api.auth import SECURITY, require_scope
from app.api.openapi import payload_schema_name
from app.api.schemas import READ_ERRORS, document_errors
from app.event_types import current_registry
from app.extensions import api

blp = Blueprint("event_types", __name__, url_prefix="/api/v1/event-types",
                description="The registered event types and their payload schemas")

COMPONENT_REF = "#/components/schemas/"


class EventType(Schema):
    category = fields.String(required=True)
    name = fields.String(required=True)
    schema = fields.Dict(required=True, metadata={"description": "JSON Schema of `data`, self-contained"})


class EventTypeList(Schema):
    items = fields.List(fields.Nested(EventType), required=True)


def registered_types() -> list[dict]:
    """Each registered type with its payload schema as the OpenAPI document shows it, refs inlined."""
    components = api.spec.to_dict().get("components", {}).get("schemas", {})
    items = []
    for (category, name), _ in current_registry():
        component = payload_schema_name(category, name)
        items.append({"category": category, "name": name,
                      "schema": self_contained(components[component], components, seen=(component,))})
    return items


def self_contained(schema, components: dict, seen: tuple[str, ...] = ()):
    """`schema` with every `$ref` to a document component replaced by that component.

    A schema that contains itself cannot be inlined: it is kept once under `$defs` and referred
    to there, so the result still points nowhere outside itself.
    """
    definitions: dict = {}

    def inline(node, stack: tuple[str, ...]):
        if isinstance(node, list):
            return [inline(item, stack) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(COMPONENT_REF):
            name = ref[len(COMPONENT_REF):]
            if name in stack:  # a cycle
                if name not in definitions:
                    definitions[name] = {}  # placeholder, so the cycle stops here
                    definitions[name] = inline(components[name], stack)
                return {"$ref": f"#/$defs/{name}"}
            return inline(components[name], (*stack, name))
        return {key: inline(value, stack) for key, value in node.items()}

    result = inline(schema, seen)
    if definitions:
        result = {**result, "$defs": definitions}
    return result


@blp.route("")
class EventTypes(MethodView):
    @blp.doc(security=SECURITY)
    @blp.response(200, EventTypeList)
    @document_errors(blp, READ_ERRORS)
    @require_scope("read")
    def get(self):
        """The registered event types, each with the JSON Schema its `data` must follow"""
        return {"items": registered_types()}
