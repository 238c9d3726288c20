"""The event-type registry: one marshmallow schema per (category, name)."""

from collections.abc import Callable

from flask import Flask, current_app
from marshmallow import Schema

from app.event_types.form import FormSubmitPayload
from app.event_types.json_schema import compile_fast_check
from app.event_types.mouse import MouseMovePayload
from app.event_types.page import CtaClickPayload, PageviewPayload


class EventTypeRegistry:
    """Maps an event's (category, name) to the schema its `data` must follow."""

    def __init__(self) -> None:
        self._schemas: dict[tuple[str, str], type[Schema]] = {}
        # Making a schema deep-copies its fields (half the cost of a validation); loading keeps no
        # state on the instance, so one instance per type serves every request thread.
        self._instances: dict[tuple[str, str], Schema] = {}
        self._fast_checks: dict[tuple[str, str], Callable[[object], bool] | None] = {}

    def register(self, category: str, name: str, schema: type[Schema]) -> None:
        self._schemas[(category, name)] = schema
        self._instances[(category, name)] = schema()
        # Compiled here, once per process: compiling generates and runs Python source.
        self._fast_checks[(category, name)] = compile_fast_check(self._instances[(category, name)])

    def schema_for(self, category: str, name: str) -> Schema | None:
        return self._instances.get((category, name))

    def fast_check_for(self, category: str, name: str) -> Callable[[object], bool] | None:
        """A compiled check that recognises valid `data` of this type cheaply; None if only the schema can judge."""
        return self._fast_checks.get((category, name))

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



def init_app(app: Flask) -> None:
    """Build and compile the app's registry, once, when the app is made (never at import)."""
    app.extensions["event_types"] = launch_registry()


def current_registry() -> EventTypeRegistry:
    """The registry of the app handling this request or task."""
    return current_app.extensions["event_types"]
