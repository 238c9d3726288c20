"""Fixtures for the mouse metrics: senders of `mouse / move` batches on either database."""

import uuid

import pytest

from tests.storage.mouse import MouseSender


@pytest.fixture
def send_moves(embedded_app) -> MouseSender:
    """Sends batches on a fresh database: send(session_id, points, tab=None, event_id=None)."""
    return MouseSender(embedded_app)


@pytest.fixture
def pg_send_moves(pg_app) -> MouseSender:
    """Sends batches on the real PostgreSQL: send(session_id, points, tab=None, event_id=None)."""
    return MouseSender(pg_app)


@pytest.fixture
def new_session() -> str:
    """A fresh session id."""
    return str(uuid.uuid4())
