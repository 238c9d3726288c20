"""What the OpenAPI document says beyond the views: security schemes and the event registry."""

from flask_smorest import Api

from app.event_types import registry


def payload_schema_name(category: str, name: str) -> str:
    words = f"{category} {name}".replace("/", " ").split()
    return "".join(word.capitalize() for word in words) + "Payload"


def document_registry(api: Api) -> None:
    """Name every registered event type's payload schema in the document."""
    spec = api.spec
    spec.components.security_scheme("ApiKey", {"type": "apiKey", "in": "header", "name": "X-API-Key"})
    spec.components.security_scheme("BearerKey", {"type": "http", "scheme": "bearer"})
    for (category, name), schema in registry:
        spec.components.schema(
            payload_schema_name(category, name),
            schema=schema,
        )
