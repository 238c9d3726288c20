"""Traffic over time for the console's charts: stored events per type and refusals per kind, per step.

Read from arrival_counts alone (kept by the workers in the same transaction as what it counts, one
row per minute of arrival, outcome and type): the cost follows the window's minutes and the number
of types, not the number of events, so a day of ten million events answers as fast as a quiet one.
Its unit is the minute of arrival: `since` is taken down to its minute and `until` up to the end of
its minute, so a window ending now includes the minute now running (its counts still growing).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, cast, func, literal, select

from app.extensions import db
from app.models import ArrivalCounts
from app.storage.arrivals import STORED, minute_of

# A chart of more points than this is unreadable, and an answer this size is still small.
MAX_BUCKETS = 1440


@dataclass(frozen=True)
class VolumeWindow:
    since: datetime
    until: datetime
    step: timedelta

    @property
    def count(self) -> int:
        """How many steps the window holds (the last may be partial); counted, never listed."""
        return -(-(self.until - self.since) // self.step)

    @property
    def buckets(self) -> list[datetime]:
        return [self.since + i * self.step for i in range(self.count)]


def volume_window(since: datetime, until: datetime, step: timedelta) -> VolumeWindow:
    """The window widened to whole minutes; ValueError if it is empty or has too many steps."""
    if step < timedelta(minutes=1) or step % timedelta(minutes=1):
        raise ValueError("`step` is a whole number of minutes (the counts' unit), e.g. 1m, 15m, 1h, 1d.")
    if until <= since:
        raise ValueError("The window is empty: `until` must be after `since`.")
    end = minute_of(until)
    window = VolumeWindow(minute_of(since), end if end == until else end + timedelta(minutes=1), step)
    # Counted before any list is made: a window of centuries in minute steps must be a quick 422.
    if window.count > MAX_BUCKETS:
        raise ValueError(f"{window.count} steps: at most {MAX_BUCKETS}; choose a longer `step`.")
    return window


def traffic_volume(window: VolumeWindow) -> dict:
    """Per step: stored events by (category, name), refusals by kind; zero-filled, aligned on `buckets`."""
    bucket = func.date_bin(literal(window.step), ArrivalCounts.minute, literal(window.since)).label("bucket")
    total = cast(func.sum(ArrivalCounts.count), BigInteger).label("count")
    rows = db.session.execute(
        select(bucket, ArrivalCounts.outcome, ArrivalCounts.category, ArrivalCounts.name, total)
        .where(ArrivalCounts.minute >= window.since, ArrivalCounts.minute < window.until)
        .group_by(bucket, ArrivalCounts.outcome, ArrivalCounts.category, ArrivalCounts.name)
    ).all()
    position = {start: index for index, start in enumerate(window.buckets)}
    stored: dict[tuple[str, str], list[int]] = {}
    refused: dict[str, list[int]] = {}
    for start, outcome, category, name, count in rows:
        series = stored.setdefault((category, name), [0] * len(position)) if outcome == STORED \
            else refused.setdefault(outcome, [0] * len(position))
        series[position[start]] += count
    return {
        "since": window.since,
        "until": window.until,
        "step_seconds": int(window.step.total_seconds()),
        "buckets": window.buckets,
        "stored": [{"category": category, "name": name, "counts": counts, "total": sum(counts)}
                   for (category, name), counts in sorted(stored.items(), key=lambda item: -sum(item[1]))],
        "refused": [{"kind": kind, "counts": counts, "total": sum(counts)}
                    for kind, counts in sorted(refused.items(), key=lambda item: -sum(item[1]))],
    }
