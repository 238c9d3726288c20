"""Live mouse metrics: fold each new `mouse / move` batch into its session's exact running totals.

Runs inside persist_batch's transaction: a redelivered message (whose events are no longer new)
computes nothing twice, and a worker killed before the commit leaves nothing half-counted.

A session's distance is the sum over its tabs of the path length over the tab's distinct points
sorted by (t, x, y). New points only change that path locally, so a batch is folded in by
re-measuring a small window around it (its points, the stored points between them, and one
neighbour on each side): the cost of a batch does not grow with the length of the session.
"""

import bisect
import functools
import math
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from sqlalchemy import bindparam, func, select, union_all
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.models import MouseMetric, MousePoint, MouseTotals, Session
from app.services import bulk_postgres
from app.services.pagination import BadCursor, decode_cursor, encode_cursor

MOUSE_MOVE = ("mouse", "move")

# (t, x, y): sorting these tuples sorts a tab's points the way the path is defined.
Point = tuple[float, float, float]


# --- The geometry, on plain tuples -------------------------------------------------------------


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
class _Totals:
    distance: float
    peak_velocity: float
    points: int


class _TabPath:
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


# --- Folding batches into the database ---------------------------------------------------------

# Core tables and statements built once: this runs for every message, and building statements and
# going through the ORM's bulk machinery cost more than the SQL itself.
POINTS, TOTALS, METRICS = MousePoint.__table__, MouseTotals.__table__, MouseMetric.__table__

_LOCK_TOTALS = (
    select(TOTALS.c.session_id, TOTALS.c.distance, TOTALS.c.peak_velocity, TOTALS.c.points)
    .where(TOTALS.c.session_id.in_(bindparam("session_ids", expanding=True)))
    .order_by(TOTALS.c.session_id)
    .with_for_update()
)
_UPDATE_TOTALS = (
    TOTALS.update()
    .where(TOTALS.c.session_id == bindparam("sid"))
    .values(distance=bindparam("distance"), peak_velocity=bindparam("peak"),
            points=bindparam("total_points"), updated_at=func.now())
)


def _window_statement():
    """A tab's stored points with t in [t_min, t_max], plus the one before and the one after."""
    p = POINTS.c
    of_tab = (p.session_id == bindparam("sid"), p.tab == bindparam("tab"))
    columns = (p.t, p.x, p.y)
    # Each part walks the primary key (session_id, tab, t, x, y); one round trip for all three.
    inside = select(*columns).where(*of_tab, p.t >= bindparam("t_min"), p.t <= bindparam("t_max"))
    before = (select(*columns).where(*of_tab, p.t < bindparam("t_min"))
              .order_by(p.t.desc(), p.x.desc(), p.y.desc()).limit(1))
    after = select(*columns).where(*of_tab, p.t > bindparam("t_max")).order_by(p.t, p.x, p.y).limit(1)
    return union_all(*(select(part.subquery()) for part in (inside, before, after)))


_WINDOW = _window_statement()

# On PostgreSQL, one round trip per message for all of its points and windows: the points go in
# through a data-modifying CTE, which reports the new ones (i = 0); the windows (i = 1, 2, …) read
# the snapshot from before the statement, so they hold the points as stored before this message,
# whatever the number of sessions and tabs a (merged) message holds.
_POSTGRES_POINTS_AND_WINDOWS = """
WITH new AS (
    INSERT INTO mouse_points (session_id, tab, t, x, y)
    SELECT * FROM unnest(%(p_sids)s::uuid[], %(p_tabs)s::text[], %(p_ts)s::float8[], %(p_xs)s::float8[],
                         %(p_ys)s::float8[])
    ON CONFLICT DO NOTHING
    RETURNING session_id, tab, t, x, y
)
SELECT 0, session_id::text, tab, t, x, y FROM new
UNION ALL
SELECT g.i, NULL, NULL, w.t, w.x, w.y
FROM unnest(%(w_sids)s::uuid[], %(w_tabs)s::text[], %(w_mins)s::float8[], %(w_maxs)s::float8[])
     WITH ORDINALITY AS g(sid, tab, t_min, t_max, i)
CROSS JOIN LATERAL (
    (SELECT p.t, p.x, p.y FROM mouse_points p
     WHERE p.session_id = g.sid AND p.tab = g.tab AND p.t >= g.t_min AND p.t <= g.t_max)
    UNION ALL
    (SELECT p.t, p.x, p.y FROM mouse_points p
     WHERE p.session_id = g.sid AND p.tab = g.tab AND p.t < g.t_min
     ORDER BY p.t DESC, p.x DESC, p.y DESC LIMIT 1)
    UNION ALL
    (SELECT p.t, p.x, p.y FROM mouse_points p
     WHERE p.session_id = g.sid AND p.tab = g.tab AND p.t > g.t_max
     ORDER BY p.t, p.x, p.y LIMIT 1)
) AS w
"""


@functools.cache
def _inserts(dialect: str):
    """The dialect's INSERT … ON CONFLICT DO NOTHING statements: (totals row, points)."""
    insert = (postgresql if dialect == "postgresql" else sqlite).insert
    p = POINTS.c
    return (
        insert(TOTALS).on_conflict_do_nothing(index_elements=["session_id"]),
        insert(POINTS).on_conflict_do_nothing().returning(p.session_id, p.tab, p.t, p.x, p.y),
    )


def record_mouse_moves(new_events: list[dict]) -> list[dict]:
    """Fold the new mouse moves into their sessions' totals and series, in the caller's transaction.

    Returns one `mouse_metrics` message per batch, to be emitted once the transaction commits. The
    database work is per message, not per batch: a message the API merged from many requests
    costs the same few statements.
    """
    batches = [MouseBatch.from_event(e) for e in new_events if (e["category"], e["name"]) == MOUSE_MOVE]
    if not batches:
        return []
    connection = db.session.connection()
    insert_totals, insert_points = _inserts(connection.dialect.name)
    totals = _lock_totals(connection, insert_totals, sorted({b.session_id for b in batches}))
    if connection.dialect.name == "postgresql":
        fresh, paths = _store_points_postgres(connection, batches)
    else:
        fresh = _insert_points(connection, insert_points, batches)
        paths = _load_paths(connection, fresh)
    metrics = []
    for batch in batches:
        path_key = (batch.session_id, batch.tab)
        new = [p for p in batch.points if p in fresh.get(path_key, ())]
        for point in new:  # a point sent twice in one message is new once
            fresh[path_key].discard(point)
        metrics.append(_fold(batch, new, paths.get(path_key), totals[batch.session_id]))
    if connection.dialect.name == "postgresql":
        bulk_postgres.save_mouse_totals_and_metrics(
            connection, [(sid, t.distance, t.peak_velocity, t.points) for sid, t in totals.items()], metrics
        )
    else:
        connection.execute(
            _UPDATE_TOTALS,
            [{"sid": sid, "distance": t.distance, "peak": t.peak_velocity, "total_points": t.points}
             for sid, t in totals.items()],
        )
        # One statement, rows in processing order: their ids give the series its order.
        connection.execute(METRICS.insert(), metrics)
    return [{"session_id": str(m["session_id"]), **_public(m)} for m in metrics]


def _lock_totals(connection, insert_totals, session_ids: list[uuid.UUID]) -> dict[uuid.UUID, _Totals]:
    """Lock the sessions' totals rows (made if missing), in a stable order so workers never deadlock.

    The row lock serialises every message touching a session, across workers, until the commit;
    SQLite needs none, as its single writer is already held since the events were inserted.
    """
    if connection.dialect.name == "postgresql":
        rows = bulk_postgres.lock_mouse_totals(connection, session_ids)
    else:
        connection.execute(
            insert_totals,
            [{"session_id": sid, "distance": 0.0, "peak_velocity": 0.0, "points": 0} for sid in session_ids],
        )
        rows = connection.execute(_LOCK_TOTALS, {"session_ids": session_ids})
    return {sid: _Totals(distance, peak, points) for sid, distance, peak, points in rows}


def _store_points_postgres(connection, batches: list[MouseBatch]) -> tuple[dict, dict]:
    """Store every batch's points and load the stored path around them, in one round trip.

    Returns, per (session, tab), the points not stored before, and the path as stored before this
    message over the span of all of its points there, with one neighbour on each side.
    """
    rows = sorted({(b.session_id, b.tab, *point) for b in batches for point in b.points})
    spans: dict[tuple, tuple[float, float]] = {}
    for sid, tab, t, _, _ in rows:  # sorted: the first t of a key is its lowest
        low, _high = spans.get((sid, tab), (t, t))
        spans[(sid, tab)] = (low, t)
    keys = list(spans)
    by_text = {str(sid): sid for sid, _ in keys}
    with bulk_postgres.raw_cursor(connection) as cursor:
        cursor.execute(_POSTGRES_POINTS_AND_WINDOWS, {
            "p_sids": [str(row[0]) for row in rows], "p_tabs": [row[1] for row in rows],
            "p_ts": [row[2] for row in rows], "p_xs": [row[3] for row in rows], "p_ys": [row[4] for row in rows],
            "w_sids": [str(sid) for sid, _ in keys], "w_tabs": [tab for _, tab in keys],
            "w_mins": [spans[key][0] for key in keys], "w_maxs": [spans[key][1] for key in keys],
        })
        fresh: dict[tuple, set[Point]] = {}
        windows: list[list[Point]] = [[] for _ in keys]
        for i, sid, tab, t, x, y in cursor.fetchall():
            if i == 0:
                fresh.setdefault((by_text[sid], tab), set()).add((t, x, y))
            else:
                windows[i - 1].append((t, x, y))
    paths = {key: _TabPath(sorted(window), fresh[key]) for key, window in zip(keys, windows, strict=True)
             if key in fresh}
    return fresh, paths


def _insert_points(connection, insert_points, batches: list[MouseBatch]) -> dict[tuple, set[Point]]:
    """Store every batch's points; returns, per (session, tab), those not stored before."""
    rows = {(b.session_id, b.tab, *point) for b in batches for point in b.points}
    returned = connection.execute(
        insert_points, [{"session_id": sid, "tab": tab, "t": t, "x": x, "y": y} for sid, tab, t, x, y in rows]
    )
    fresh: dict[tuple, set[Point]] = {}
    for sid, tab, t, x, y in returned:
        fresh.setdefault((sid, tab), set()).add((t, x, y))
    return fresh


def _load_paths(connection, fresh: dict[tuple, set[Point]]) -> dict[tuple, _TabPath]:
    """The stored path around each tab's new points: those between them and one neighbour each side."""
    paths = {}
    for (sid, tab), points in fresh.items():
        window = connection.execute(_WINDOW, {"sid": sid, "tab": tab, "t_min": min(points)[0], "t_max": max(points)[0]})
        paths[(sid, tab)] = _TabPath(sorted(map(tuple, window)), points)
    return paths


def _fold(batch: MouseBatch, new: list[Point], path: _TabPath | None, totals: _Totals) -> dict:
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


# --- Reading the series back -------------------------------------------------------------------


class UnknownSession(Exception):
    """No event and no mouse data was ever stored for this session."""


PUBLIC_FIELDS = ("t", "distance", "velocity", "peak_velocity", "points")


def _public(metric: Mapping) -> dict:
    return {name: metric[name] for name in PUBLIC_FIELDS}


def metrics_page(session_id: uuid.UUID, limit: int, cursor: str | None) -> dict:
    """One page of a session's metric series in processing order; BadCursor, UnknownSession."""
    kind = f"mouse-metrics:{session_id}"
    after = _cursor_id(kind, cursor) if cursor else 0
    rows = db.session.execute(
        select(MouseMetric.id, *(getattr(MouseMetric, name) for name in PUBLIC_FIELDS))
        .where(MouseMetric.session_id == session_id, MouseMetric.id > after)
        .order_by(MouseMetric.id)
        .limit(limit + 1)
    ).all()
    if not rows and not cursor and not _session_known(session_id):
        raise UnknownSession(str(session_id))
    page = rows[:limit]
    next_cursor = encode_cursor(kind, [page[-1].id]) if len(rows) > limit else None
    return {"items": [_public(row._mapping) for row in page], "next_cursor": next_cursor}


def _cursor_id(kind: str, cursor: str) -> int:
    after = decode_cursor(kind, cursor)
    if len(after) != 1 or not isinstance(after[0], int):
        raise BadCursor("This cursor belongs to another listing.")
    return after[0]


def _session_known(session_id: uuid.UUID) -> bool:
    return (
        db.session.get(Session, session_id) is not None
        or db.session.get(MouseTotals, session_id) is not None
    )
