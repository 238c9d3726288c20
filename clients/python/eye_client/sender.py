"""The background loop that drains the buffer: batch, send, retry, report what is lost."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from eye_client import reasons
from eye_client.batching import MAX_BODY_BYTES, encode_body, split_batch
from eye_client.buffer import EventBuffer
from eye_client.event import QueuedEvent
from eye_client.retry import Backoff, is_retryable
from eye_client.transport import Reply, Transport

logger = logging.getLogger("eye_client")

# (events, reason, detail for the log)
DropReporter = Callable[[list[dict[str, Any]], str, str], None]


class Sender:
    """Runs on the client's daemon thread; the only code that talks to the server."""

    def __init__(
        self,
        buffer: EventBuffer,
        transport: Transport,
        backoff: Backoff,
        flush_interval: float,
        stop: threading.Event,
        report_drop: DropReporter,
    ) -> None:
        self._buffer = buffer
        self._transport = transport
        self._backoff = backoff
        self._flush_interval = flush_interval
        self._stop = stop
        self._report_drop = report_drop

    def run(self) -> None:
        """Send batches until the buffer is closed."""
        while True:
            batch = self._buffer.take(self._flush_interval)
            if not batch:
                if self._buffer.closed:
                    return
                continue
            try:
                for chunk in split_batch(batch):
                    self._deliver_safely(chunk)
            finally:
                self._buffer.settle(len(batch))

    def _deliver_safely(self, chunk: list[QueuedEvent]) -> None:
        # A bug here must cost one chunk, not the thread: a dead sender would silently stop
        # every later event and hang flush().
        try:
            self._deliver(chunk)
        except Exception:
            logger.exception("eye_client: unexpected error sending %d event(s)", len(chunk))
            self._drop(chunk, reasons.ERROR, "see the traceback above")

    def _deliver(self, chunk: list[QueuedEvent]) -> None:
        body = encode_body(chunk)
        if len(body) > MAX_BODY_BYTES:
            self._drop(chunk, reasons.OVERSIZE, f"one event is {len(body)} bytes as a request")
            return
        attempt = 0
        while True:
            if self._stop.is_set():
                self._drop(chunk, reasons.SHUTDOWN, "client shut down before delivery")
                return
            reply = self._transport.post(body)
            if reply.status is not None and 200 <= reply.status <= 299:
                self._report_rejected(chunk, reply)
                return
            if not is_retryable(reply.status):
                self._report_final(chunk, reply)
                return
            if attempt >= self._backoff.max_retries:
                detail = f"{_describe(reply)} after {attempt} retries"
                self._drop(chunk, reasons.RETRIES_EXHAUSTED, detail)
                return
            delay = self._backoff.delay(attempt, reply.retry_after)
            logger.info(
                "eye_client: %s; retrying %d event(s) in %.2fs",
                _describe(reply),
                len(chunk),
                delay,
            )
            # Waiting on the stop event, not sleeping, lets shutdown() cut a long back-off short.
            self._stop.wait(delay)
            attempt += 1

    def _report_rejected(self, chunk: Sequence[QueuedEvent], reply: Reply) -> None:
        for reason, events in _rejected_by_kind(chunk, reply.payload).items():
            self._drop(events, reason, f"HTTP {reply.status}")

    def _report_final(self, chunk: Sequence[QueuedEvent], reply: Reply) -> None:
        groups = _rejected_by_kind(chunk, reply.payload)
        named = {id(item) for events in groups.values() for item in events}
        rest = [item for item in chunk if id(item) not in named]
        detail = f"{_describe(reply)}, not retried"
        for reason, events in groups.items():
            self._drop(events, reason, detail)
        if rest:
            self._drop(rest, reasons.http_status(reply.status or 0), detail)

    def _drop(self, items: Sequence[QueuedEvent], reason: str, detail: str = "") -> None:
        self._report_drop([item.event for item in items], reason, detail)


def _rejected_by_kind(chunk: Sequence[QueuedEvent], payload: Any) -> dict[str, list[QueuedEvent]]:
    """Group the events a reply's `rejected` list names, keyed by drop reason."""
    rejected = payload.get("rejected") if isinstance(payload, dict) else None
    groups: dict[str, list[QueuedEvent]] = {}
    seen: set[int] = set()
    for entry in rejected if isinstance(rejected, list) else []:
        index = entry.get("index") if isinstance(entry, dict) else None
        # bool is an int; a malformed reply must not map True to index 1.
        if type(index) is not int or not 0 <= index < len(chunk) or index in seen:
            continue
        seen.add(index)
        kind = entry.get("kind") if isinstance(entry.get("kind"), str) else "unknown"
        groups.setdefault(reasons.rejected(kind), []).append(chunk[index])
    return groups


def _describe(reply: Reply) -> str:
    if reply.status is None:
        return f"no answer ({reply.error})"
    message = reply.payload.get("message") if isinstance(reply.payload, dict) else None
    return f"HTTP {reply.status}" + (f": {message}" if message else "")
