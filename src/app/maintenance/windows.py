"""Calendar windows of a partition interval (UTC), as pg-partsmith cuts and names them.

Used where partitions are made without pg-partsmith's engine: migration 0003, which runs inside
Alembic's transaction, and the bench that loads months of data.
"""

from datetime import UTC, datetime, timedelta


def window_start(interval: str, at: datetime) -> datetime:
    at = at.astimezone(UTC)
    day = datetime(at.year, at.month, at.day, tzinfo=UTC)
    if interval == "day":
        return day
    if interval == "week":  # ISO weeks start on Monday
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    raise ValueError(f"unknown partition interval {interval!r}")


def next_window(interval: str, start: datetime) -> datetime:
    if interval == "day":
        return start + timedelta(days=1)
    if interval == "week":
        return start + timedelta(weeks=1)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def window_starts(interval: str, at: datetime, count: int) -> list[datetime]:
    """The starts of `count` consecutive windows, the first being the one that holds `at`."""
    starts = [window_start(interval, at)]
    while len(starts) < count:
        starts.append(next_window(interval, starts[-1]))
    return starts


def window_name(table: str, interval: str, start: datetime) -> str:
    """pg-partsmith's names: events__2026_11, events__2026_w48, mouse_points__2026_11_30."""
    if interval == "month":
        return f"{table}__{start:%Y_%m}"
    if interval == "week":
        year, week, _ = start.isocalendar()
        return f"{table}__{year:04d}_w{week:02d}"
    return f"{table}__{start:%Y_%m_%d}"


def epoch_ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)
