"""Fixtures: a fake Eye server on 127.0.0.1 and clients pointed at it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The tests run from the repository root without installing the package, under any import mode.
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from fake_eye_server import API_KEY, DropLog, FakeEyeServer  # noqa: E402

from eye_client import EyeClient  # noqa: E402


@pytest.fixture
def server() -> Iterator[FakeEyeServer]:
    """A fake Eye server on 127.0.0.1 that accepts everything unless scripted otherwise."""
    fake = FakeEyeServer()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def drops() -> DropLog:
    """A recording on_drop callback."""
    return DropLog()


@pytest.fixture
def make_client(server: FakeEyeServer, drops: DropLog) -> Iterator[Callable[..., EyeClient]]:
    """Build clients for `server` with test-sized back-off; shut them all down afterwards."""
    clients: list[EyeClient] = []

    def make(**options: Any) -> EyeClient:
        settings: dict[str, Any] = {
            "flush_interval": 0.05,
            "backoff_base": 0.01,
            "backoff_max": 0.05,
            "on_drop": drops,
        }
        settings.update(options)
        client = EyeClient(server.url, API_KEY, **settings)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.shutdown(1.0)
