"""When to retry a request and how long to wait first."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def is_retryable(status: int | None) -> bool:
    """429, any 5xx and no answer at all (None) may succeed later; other statuses will not."""
    return status is None or status == 429 or 500 <= status <= 599


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if unusable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off with full jitter, overridden by the server's Retry-After."""

    base: float = 0.5
    cap: float = 30.0
    max_retries: int = 10

    def delay(
        self,
        attempt: int,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to sleep before retry number `attempt` (0 for the first retry)."""
        if retry_after is not None:
            # Honour the server, but a huge value must not stall the queue indefinitely; the
            # small jitter on top stops clients told the same value from retrying in lockstep.
            return min(retry_after, self.cap) + rand() * min(self.base, self.cap)
        return rand() * min(self.cap, self.base * 2 ** min(attempt, 32))
