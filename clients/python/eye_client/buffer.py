"""The bounded in-memory queue between track() and the sender thread."""

from __future__ import annotations

import threading
import time
from collections import deque

from eye_client.event import QueuedEvent


class EventBuffer:
    """A bounded FIFO whose counters let flush() wait for everything queued before it."""

    def __init__(self, max_size: int, batch_size: int) -> None:
        self._items: deque[QueuedEvent] = deque()
        self._max_size = max_size
        self._batch_size = batch_size
        self._cond = threading.Condition()
        # Monotonic counters rather than per-event bookkeeping: a flush waits for `settled` to
        # reach the `added` it saw, which works because one sender settles events in order.
        self._added = 0
        self._taken = 0
        self._settled = 0
        self._flush_upto = 0
        self._sealed = False
        self._closed = False

    def put(self, item: QueuedEvent) -> bool:
        """Queue an event; False, at once, if the buffer is full or sealed."""
        with self._cond:
            if self._sealed or len(self._items) >= self._max_size:
                return False
            self._items.append(item)
            self._added += 1
            if len(self._items) >= self._batch_size:
                self._cond.notify_all()
            return True

    def take(self, timeout: float) -> list[QueuedEvent]:
        """Wait up to `timeout` for a full batch (less when flushing or closed); pop up to one."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._ready():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            count = min(self._batch_size, len(self._items))
            batch = [self._items.popleft() for _ in range(count)]
            self._taken += count
            return batch

    def _ready(self) -> bool:
        if self._closed or len(self._items) >= self._batch_size:
            return True
        return bool(self._items) and self._taken < self._flush_upto

    def settle(self, count: int) -> None:
        """Record that `count` taken events were sent or dropped."""
        with self._cond:
            self._settled += count
            self._cond.notify_all()

    def request_flush(self) -> int:
        """Ask the sender not to wait for a full batch; return the count a flush waits for."""
        with self._cond:
            self._flush_upto = self._added
            self._cond.notify_all()
            return self._added

    def wait_settled(self, target: int, timeout: float | None) -> bool:
        """Block until `target` events are settled; False if `timeout` passes first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._settled >= target, timeout)

    def seal(self) -> None:
        """Refuse new events from now on."""
        with self._cond:
            self._sealed = True

    def close(self) -> list[QueuedEvent]:
        """Seal, wake the sender so it exits, and hand back what is still queued."""
        with self._cond:
            self._sealed = self._closed = True
            rest = list(self._items)
            self._items.clear()
            self._taken += len(rest)
            self._cond.notify_all()
            return rest

    @property
    def sealed(self) -> bool:
        return self._sealed

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        """Events accepted but not yet sent or dropped."""
        with self._cond:
            return self._added - self._settled
