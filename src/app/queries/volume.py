"""Traffic over time for the console's charts: stored events per type and refusals per kind, per step.

Read from the arrival rollups alone (kept by the workers in the same statement as each other and in
the same transaction as what they count, one row per minute, or per hour, of arrival, outcome and
type): the cost follows the window's minutes (or hours) and the number of types, not the number of
events, so a day of ten million events answers as fast as a quiet one.

A step of a whole number of hours (1h, 6h, 1d) reads arrival_counts_hourly, and the window's unit
is then the hour of arrival (UTC): `since` is taken down to its hour and `until` up to the end of
its hour. Any other step reads arrival_counts, and the unit is the minute: `since` down to its
minute, `until` up to the end of its minute. Either way a window ending now includes the minute (or
hour) now running, its counts still growing; and both rollups give the same counts for an hour.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import BigInteger, cast, func, literal, select

from app.extensions import db
from app.models import ArrivalCounts, ArrivalCountsHourly
from app.storage.arrivals import STORED, minute_of

# A chart of more points than this is unreadable, and an answer this size is still small.
MAX_BUCKETS = 1440

MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)


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

    @property
    def hourly(self) -> bool:
        """Whether the hourly rollup answers: steps of whole hours over a window of whole UTC hours."""
        return not self.step % HOUR and all(hour_of(at) == at for at in (self.since, self.until))


def hour_of(instant: datetime) -> datetime:
    """The start of the instant's hour, in UTC (the hourly rollup's hours)."""
    return instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def volume_window(since: datetime, until: datetime, step: timedelta) -> VolumeWindow:
    """The window widened to whole minutes, or to whole UTC hours for a step of whole hours;
    ValueError if it is empty or has too many steps."""
    if step < MINUTE or step % MINUTE:
        raise ValueError("`step` is a whole number of minutes (the counts' unit), e.g. 1m, 15m, 1h, 1d.")
    if until <= since:
        raise ValueError("The window is empty: `until` must be after `since`.")
    start_of, unit = (hour_of, HOUR) if not step % HOUR else (minute_of, MINUTE)
    end = start_of(until)
    try:
        window = VolumeWindow(start_of(since), end if end == until else end + unit, step)
    except OverflowError:  # the end of its minute or hour is past year 9999
        raise ValueError("`until` is too far in the future.") from None
    # Counted before any list is made: a window of centuries in minute steps must be a quick 422.
    if window.count > MAX_BUCKETS:
        raise ValueError(f"{window.count} steps: at most {MAX_BUCKETS}; choose a longer `step`.")
    return window


def traffic_volume(window: VolumeWindow) -> dict:
    """Per step: stored events by (category, name), refusals by kind; zero-filled, aligned on `buckets`."""
    counts, at = (ArrivalCountsHourly, ArrivalCountsHourly.hour) if window.hourly \
        else (ArrivalCounts, ArrivalCounts.minute)
    bucket = func.date_bin(literal(window.step), at, literal(window.since)).label("bucket")
    total = cast(func.sum(counts.count), BigInteger).label("count")
    rows = db.session.execute(
        select(bucket, counts.outcome, counts.category, counts.name, total)
        .where(at >= window.since, at < window.until)
        .group_by(bucket, counts.outcome, counts.category, counts.name)
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
