"""The reasons on_drop is given for events that will never reach the server."""

QUEUE_FULL = "queue_full"
"""track() found the in-memory queue full."""

INVALID = "invalid"
"""The event breaks the contract (bad UUID, label length, data not a JSON object...)."""

OVERSIZE = "oversize"
"""The event's data is over 32 KiB as JSON, or the event alone would not fit in a request."""

RETRIES_EXHAUSTED = "retries_exhausted"
"""The server kept answering 429/5xx, or could not be reached, for max_retries retries."""

SHUTDOWN = "shutdown"
"""The client was shut down before the event could be sent."""

ERROR = "error"
"""An unexpected error in the client itself; logged with its traceback."""


def http_status(status: int) -> str:
    """A final HTTP answer for the whole request, e.g. "http_400"."""
    return f"http_{status}"


def rejected(kind: str) -> str:
    """The server refused this event in particular, e.g. "rejected:invalid_payload"."""
    return f"rejected:{kind}"
