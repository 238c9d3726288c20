"""ISO 8601 instants as the contract reads them: `T` or a space, offset optional (none means UTC)."""

from datetime import UTC, datetime


def utc_instant(text: str) -> datetime:
    """The instant `text` names, in UTC; ValueError if it is not one (or falls outside years 1–9999)."""
    try:
        parsed = datetime.fromisoformat(text)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError as exc:  # e.g. year 1 with a positive offset: before datetime.min in UTC
        raise ValueError(str(exc)) from None
