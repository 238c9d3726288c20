"""One HTTP POST of a batch body to the server, with the outcome reduced to what matters."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import requests

from eye_client.retry import parse_retry_after
from eye_client.version import __version__

BATCH_PATH = "/api/v1/events/batch"

logger = logging.getLogger("eye_client")


@dataclass(frozen=True, slots=True)
class Reply:
    """The server's answer; `status` None means no answer (refused, reset, timed out)."""

    status: int | None
    retry_after: float | None = None
    payload: Any = None
    error: str | None = None


class Transport:
    """Posts request bodies to the batch endpoint over one keep-alive session."""

    def __init__(self, url: str, api_key: str, timeout: float) -> None:
        self.endpoint = url.rstrip("/") + BATCH_PATH
        self._headers = {
            "X-API-Key": api_key,
            "Content-Type": "application/json",
            "User-Agent": f"eye-client-python/{__version__}",
        }
        self._timeout = timeout
        self._session = requests.Session()

    def post(self, body: bytes) -> Reply:
        """Send one body; never raises for network trouble."""
        try:
            response = self._session.post(
                self.endpoint, data=body, headers=self._headers, timeout=self._timeout
            )
        except requests.RequestException as exc:
            return Reply(status=None, error=f"{type(exc).__name__}: {exc}")
        with response:
            try:
                payload = response.json()
            except ValueError:
                payload = None
            return Reply(
                status=response.status_code,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                payload=payload,
            )

    def close(self) -> None:
        self._session.close()
