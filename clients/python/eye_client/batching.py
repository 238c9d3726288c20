"""Cut a batch of events into request bodies the server accepts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from eye_client.event import QueuedEvent

MAX_EVENTS_PER_REQUEST = 500
MAX_BODY_BYTES = 1024 * 1024

_PREFIX = b'{"events":['
_SUFFIX = b"]}"


def split_batch(
    items: Sequence[QueuedEvent],
    max_events: int = MAX_EVENTS_PER_REQUEST,
    max_bytes: int = MAX_BODY_BYTES,
) -> Iterator[list[QueuedEvent]]:
    """Yield consecutive chunks of at most `max_events` events and `max_bytes` of body."""
    chunk: list[QueuedEvent] = []
    size = len(_PREFIX) + len(_SUFFIX)
    for item in items:
        extra = len(item.encoded) + (1 if chunk else 0)  # the comma between events
        if chunk and (len(chunk) >= max_events or size + extra > max_bytes):
            yield chunk
            chunk, size = [], len(_PREFIX) + len(_SUFFIX)
            extra = len(item.encoded)
        chunk.append(item)
        size += extra
    if chunk:
        yield chunk


def encode_body(items: Sequence[QueuedEvent]) -> bytes:
    """The JSON request body for these events, from their already-encoded bytes."""
    return _PREFIX + b",".join(item.encoded for item in items) + _SUFFIX
