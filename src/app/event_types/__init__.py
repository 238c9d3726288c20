"""The event-type registry: one marshmallow schema per (category, name)."""

from marshmallow import Schema

from app.event_types.form import FormSubmitPayload
from app.event_types.mouse import MouseMovePayload
from app.event_types.page import CtaClickPayload, PageviewPayload


class EventTypeRegistry:
    """Maps an event's (category, name) to the schema its `data` must follow."""

    def __init__(self) -> None:
        self._schemas: dict[tuple[str, str], type[Schema]] = {}

    def register(self, category: str, name: str, schema: type[Schema]) -> None:
        self._schemas[(category, name)] = schema

    def schema_for(self, category: str, name: str) -> Schema | None:
        schema = self._schemas.get((category, name))
        return schema() if schema else None

    def __iter__(self):
        return iter(sorted(self._schemas.items()))

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._schemas


def launch_registry() -> EventTypeRegistry:
    """The event types registered at launch, from the brief's examples."""
    registry = EventTypeRegistry()
    registry.register("page interaction", "pageview", PageviewPayload)
    registry.register("page interaction", "cta click", CtaClickPayload)
    registry.register("form interaction", "submit", FormSubmitPayload)
    registry.register("mouse", "move", MouseMovePayload)
    return registry


registry = launch_registry()
