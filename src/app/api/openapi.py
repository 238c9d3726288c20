"""What the OpenAPI document says beyond the views: security schemes and the event registry."""

from flask_smorest import Api

from app.event_types import EventTypeRegistry


def payload_schema_name(category: str, name: str) -> str:
    words = f"{category} {name}".replace("/", " ").split()
    return "".join(word.capitalize() for word in words) + "Payload"


API_DESCRIPTION = """Behavioural events in, stored exactly once in PostgreSQL, refusals recorded.

**Numbers** in an event are stored exactly as sent, or refused with 422 `invalid_event` naming the
field: integers from -2^63 to 2^63-1 are kept, and any other number whose 64-bit float is the same
decimal value as the text sent (`0.1`, `1e-300`, `5e-324`); an integer beyond 64 bits, a number with
more digits than a double keeps, an underflow to zero and `-0.0` (which PostgreSQL would store as
`0.0`) are refused. Send such values as strings.
"""


def document_registry(api: Api, registry: EventTypeRegistry) -> None:
    """Name every registered event type's payload schema in the document, and describe the API."""
    spec = api.spec
    spec.options.setdefault("info", {})["description"] = API_DESCRIPTION
    spec.components.security_scheme("ApiKey", {"type": "apiKey", "in": "header", "name": "X-API-Key"})
    spec.components.security_scheme("BearerKey", {"type": "http", "scheme": "bearer"})
    for (category, name), schema in registry:
        spec.components.schema(
            payload_schema_name(category, name),
            schema=schema,
        )
