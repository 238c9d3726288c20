"""EyeClient: the public face of the library."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from eye_client import lifecycle, reasons
from eye_client.batching import MAX_EVENTS_PER_REQUEST
from eye_client.buffer import EventBuffer
from eye_client.event import InvalidEvent, build_event
from eye_client.retry import Backoff
from eye_client.sender import Sender
from eye_client.transport import Transport

logger = logging.getLogger("eye_client")

OnDrop = Callable[[list[dict[str, Any]], str], None]

# A full queue can drop thousands of events a second; one warning per interval is enough.
_QUEUE_FULL_LOG_INTERVAL = 10.0
_STOP_GRACE = 0.2


class EyeClient:
    """Queues events in memory and sends them to The Eye from a background thread.

    track() never blocks and never raises for network trouble: events that cannot be delivered
    are counted in `dropped` and passed to `on_drop(events, reason)`, with a reason from
    `eye_client.reasons`.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        max_queue_size: int = 10000,
        batch_size: int = 100,
        flush_interval: float = 0.5,
        timeout: float = 5.0,
        max_retries: int = 10,
        on_drop: OnDrop | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        exit_timeout: float = 5.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("url must be an http:// or https:// URL")
        if not isinstance(api_key, str) or not api_key or any(c in api_key for c in "\r\n"):
            raise ValueError("api_key must be a non-empty single-line string")
        if not 1 <= batch_size <= MAX_EVENTS_PER_REQUEST:
            raise ValueError(f"batch_size must be between 1 and {MAX_EVENTS_PER_REQUEST}")
        if max_queue_size < 1:
            raise ValueError("max_queue_size must be at least 1")
        if flush_interval <= 0 or timeout <= 0:
            raise ValueError("flush_interval and timeout must be positive")
        if max_retries < 0 or backoff_base < 0 or backoff_max < 0 or exit_timeout < 0:
            raise ValueError("max_retries, backoff_base, backoff_max and exit_timeout must be >= 0")

        self._url = url
        self._api_key = api_key
        self._max_queue_size = max_queue_size
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._timeout = timeout
        self._backoff = Backoff(base=backoff_base, cap=backoff_max, max_retries=max_retries)
        self._on_drop = on_drop
        self._exit_timeout = exit_timeout
        self._closed = False
        self._start_process_state()
        lifecycle.register(self)

    def _start_process_state(self) -> None:
        """Create everything a process must not share with its parent: queue, locks, thread."""
        self._lock = threading.Lock()
        self._drop_lock = threading.Lock()
        self._dropped = 0
        self._last_full_log = float("-inf")
        self._buffer = EventBuffer(self._max_queue_size, self._batch_size)
        self._stop = threading.Event()
        self._transport = Transport(self._url, self._api_key, self._timeout)
        self._sender = Sender(
            self._buffer,
            self._transport,
            self._backoff,
            self._flush_interval,
            self._stop,
            self._report_drop,
        )
        self._thread: threading.Thread | None = None
        if self._closed:
            self._buffer.close()

    def __repr__(self) -> str:
        return f"EyeClient(url={self._url!r})"

    def __enter__(self) -> EyeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown(self._exit_timeout)

    @property
    def dropped(self) -> int:
        """How many events were dropped, for whatever reason, since the client (or fork) began."""
        return self._dropped

    @property
    def pending(self) -> int:
        """Events queued or in flight, not yet sent or dropped."""
        return self._buffer.pending

    def track(
        self,
        session_id: Any,
        category: str,
        name: str,
        data: dict[str, Any],
        timestamp: Any = None,
        event_id: Any = None,
    ) -> str:
        """Queue one event and return its event_id; never blocks, never raises for the network.

        `timestamp` is a datetime (naive means UTC) or an ISO 8601 string; default now.
        `event_id` defaults to a fresh uuid4, the key that makes a retry not a duplicate.
        """
        try:
            item = build_event(session_id, category, name, data, timestamp, event_id)
        except InvalidEvent as exc:
            self._report_drop([exc.event], exc.reason, str(exc))
            return exc.event["event_id"]
        if self._buffer.put(item):
            self._ensure_sender()
        else:
            self._report_drop(
                [item.event], reasons.SHUTDOWN if self._buffer.sealed else reasons.QUEUE_FULL
            )
        return item.event_id

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event queued so far is sent or dropped; False if `timeout` ran out."""
        if threading.current_thread() is self._thread:
            # Called from on_drop on the sender thread: waiting for ourselves would deadlock.
            return False
        target = self._buffer.request_flush()
        self._ensure_sender()
        return self._buffer.wait_settled(target, timeout)

    def shutdown(self, timeout: float | None = 5.0) -> bool:
        """Flush for up to `timeout` seconds, then drop what is left and stop the thread.

        A request already in flight is not awaited past the deadline (plus a brief grace).

        Returns what flush() returned. Events tracked afterwards are dropped with reason
        "shutdown".
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        self._closed = True
        self._buffer.seal()
        done = self.flush(timeout)
        self._stop.set()
        leftovers = self._buffer.close()
        if leftovers:
            self._report_drop([item.event for item in leftovers], reasons.SHUTDOWN)
            self._buffer.settle(len(leftovers))
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # A short grace even when the budget is spent, so a sender woken from back-off can
            # report its batch as dropped before we return; a request in flight is not awaited.
            grace = None if deadline is None else max(_STOP_GRACE, deadline - time.monotonic())
            thread.join(grace)
        if thread is None or not thread.is_alive():
            self._transport.close()
        return done

    def _ensure_sender(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._lock:
            if (self._thread is not None and self._thread.is_alive()) or self._buffer.closed:
                return
            thread = threading.Thread(
                target=self._sender.run, name="eye-client-sender", daemon=True
            )
            try:
                thread.start()
            except RuntimeError:
                logger.exception("eye_client: could not start the sender thread")
                return
            self._thread = thread

    def _report_drop(self, events: list[dict[str, Any]], reason: str, detail: str = "") -> None:
        quiet = False
        with self._drop_lock:
            self._dropped += len(events)
            total = self._dropped
            if reason == reasons.QUEUE_FULL:
                now = time.monotonic()
                quiet = now - self._last_full_log < _QUEUE_FULL_LOG_INTERVAL
                if not quiet:
                    self._last_full_log = now
        if reason != reasons.QUEUE_FULL:
            logger.warning(
                "eye_client: dropped %d event(s): %s%s",
                len(events),
                reason,
                f" ({detail})" if detail else "",
            )
        elif not quiet:
            logger.warning(
                "eye_client: queue full (max_queue_size=%d), dropping events; %d dropped so far",
                self._max_queue_size,
                total,
            )
        if self._on_drop is None:
            return
        try:
            self._on_drop(events, reason)
        except Exception:
            logger.exception("eye_client: on_drop callback raised")

    def _after_fork_in_child(self) -> None:
        # The parent's queue, locks, session and thread are copies the child must not use: the
        # thread does not exist here, a lock may be held forever, and queued events belong to
        # the parent, which will send them itself.
        self._start_process_state()

    def _shutdown_at_exit(self) -> None:
        if not self._closed or self._buffer.pending:
            self.shutdown(self._exit_timeout)
