"""The mouse metrics' geometry, on plain tuples: steps, windows and the exact fold of a batch.

A session's distance is the sum over its tabs of the path length over the tab's distinct points
sorted by (t, x, y). New points only change that path locally, so a batch is folded in by
re-measuring a small window around it (its points, the stored points between them, and one
neighbour on each side): the cost of a batch does not grow with the length of the session.

Nothing here touches the database (storage/mouse.py stores the points and totals), so the rules
are tested on their own.
"""

import bisect
import math
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

MOUSE_MOVE = ("mouse", "move")

# (t, x, y): sorting these tuples sorts a tab's points the way the path is defined.
Point = tuple[float, float, float]


def step_length(a: Point, b: Point) -> float:
    return math.hypot(b[1] - a[1], b[2] - a[2])


def path_length(points: Sequence[Point]) -> float:
    """Length of the path through `points` in the order given, in px."""
    return math.fsum(step_length(a, b) for a, b in pairwise(points))


def step_velocities(points: Sequence[Point]) -> Iterator[float]:
    """px/s of each step that takes time; a zero-time step adds distance but no velocity sample."""
    for a, b in pairwise(points):
        dt = b[0] - a[0]
        if dt > 0:
            yield step_length(a, b) / dt * 1000.0


def batch_velocity(points: Sequence[Point]) -> float:
    """Distance over the batch's own sorted points divided by its time span (0 if it has none)."""
    if len(points) < 2:
        return 0.0
    span = points[-1][0] - points[0][0]
    return path_length(points) / span * 1000.0 if span > 0 else 0.0


def distance_change(before: Sequence[Point], after: Sequence[Point]) -> float:
    """How much a window's path length changes from `before` to `after` (both sorted).

    Only the steps that differ are measured, so steps the two paths share cancel exactly instead
    of leaving rounding noise that would build up over a long session.
    """
    old, new = set(pairwise(before)), set(pairwise(after))
    return math.fsum(step_length(a, b) for a, b in new - old) - math.fsum(
        step_length(a, b) for a, b in old - new
    )


def sorted_points(raw_points: Iterable[dict]) -> list[Point]:
    """A payload's points as distinct (t, x, y) tuples in path order."""
    return sorted({(float(p["t"]), float(p["x"]), float(p["y"])) for p in raw_points})


@dataclass(frozen=True)
class MouseBatch:
    """One new `mouse / move` event, reduced to what the metrics need."""

    session_id: uuid.UUID
    event_id: uuid.UUID
    tab: str
    points: list[Point]

    @classmethod
    def from_event(cls, event: dict) -> "MouseBatch":
        data = event["data"]
        return cls(
            session_id=uuid.UUID(event["session_id"]),
            event_id=uuid.UUID(event["event_id"]),
            # The model keeps "" for a page that names no tab: all its points make one path.
            tab=data.get("tab") or "",
            points=sorted_points(data["points"]),
        )


@dataclass
class RunningTotals:
    """A session's totals while a message is folded in (its row is locked meanwhile)."""

    distance: float
    peak_velocity: float
    points: int


class TabPath:
    """A tab's stored points around a message's new points, as its batches are folded in one by one."""

    def __init__(self, window: list[Point], fresh: set[Point]):
        self.points = [p for p in window if p not in fresh]  # as stored before this message

    def insert(self, new: list[Point]) -> tuple[float, list[Point]]:
        """Insert sorted new points; returns the distance they add and the path around them."""
        points = self.points
        first = max(bisect.bisect_left(points, new[0]) - 1, 0)  # from the predecessor…
        end = bisect.bisect_right(points, new[-1]) + 1  # …to the successor, included
        before = points[first:end]
        for point in new:
            bisect.insort(points, point)
        after = points[first:end + len(new)]
        return distance_change(before, after), after


def fold_batch(batch: MouseBatch, new: list[Point], path: TabPath | None, totals: RunningTotals) -> dict:
    """Add one batch to its (locked) session totals; returns its row of the metric series."""
    peaks = list(step_velocities(batch.points))
    if new:
        added, around = path.insert(new)
        totals.distance += added
        totals.points += len(new)
        peaks.extend(step_velocities(around))
    totals.peak_velocity = max([totals.peak_velocity, *peaks])
    return {
        "session_id": batch.session_id,
        "event_id": batch.event_id,
        "t": batch.points[-1][0],
        "distance": totals.distance,
        "velocity": batch_velocity(batch.points),
        "peak_velocity": totals.peak_velocity,
        "points": totals.points,
    }


PUBLIC_FIELDS = ("t", "distance", "velocity", "peak_velocity", "points")


def public_metric(metric: Mapping) -> dict:
    return {name: metric[name] for name in PUBLIC_FIELDS}
