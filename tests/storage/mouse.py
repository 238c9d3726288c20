"""Sending `mouse / move` batches through store_message, as the worker does."""

import uuid
from datetime import UTC, datetime

from app.extensions import db
from app.identity import keys
from app.messages import build_message, build_part
from app.models import MouseTotals
from app.storage.message import store_message


def mouse_event(session_id: str, points, tab: str | None = None, event_id: str | None = None) -> dict:
    """A `mouse / move` event of (t, x, y) points, as the API accepts it."""
    data = {"points": [{"t": t, "x": x, "y": y} for t, x, y in points]}
    if tab is not None:
        data["tab"] = tab
    return {"event_id": event_id or str(uuid.uuid4()), "session_id": session_id, "category": "mouse",
            "name": "move", "data": data, "timestamp": datetime.now(UTC).isoformat()}


class MouseSender:
    """Persists `mouse / move` events as the worker does, each message in its own transaction."""

    def __init__(self, app):
        self.app = app
        with app.app_context():
            self.application_id = keys.get_or_create_application("mouse-metrics-tests").id

    def message(self, events: list[dict]) -> list[dict]:
        """Persist one ingest message holding `events`; returns the metrics it would emit."""
        message = build_message([build_part(self.application_id, datetime.now(UTC), events, [])])
        with self.app.app_context():
            return store_message(message).mouse_metrics

    def __call__(self, session_id: str, points, tab: str | None = None, event_id: str | None = None) -> list[dict]:
        """Persist one batch of (t, x, y) points in a message of its own."""
        return self.message([mouse_event(session_id, points, tab, event_id)])

    def totals(self, session_id: str) -> MouseTotals:
        with self.app.app_context():
            return db.session.get(MouseTotals, uuid.UUID(session_id))
