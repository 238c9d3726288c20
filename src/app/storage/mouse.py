"""Stores mouse points and folds each new `mouse / move` batch into its session's totals and series.

Runs inside the message's transaction (storage/message.py): a redelivered message, whose events are
no longer new, computes nothing twice, and a worker killed before the commit leaves nothing
half-counted. The geometry itself is in app/mouse_geometry.py.

How long points stay: mouse_points is partitioned by day of `t` and kept for EYE_MOUSE_LATE_LIMIT
(default 2 days; points with an older `t` land in its DEFAULT partition and go at the next prune).
Within that limit every batch is folded exactly, whatever the order of arrival. A batch arriving
later than that after its neighbouring points is folded against what is left: its steps to points
already dropped are not counted (its own steps, and those to the points still kept, are).
"""

import uuid

from app.extensions import db
from app.mouse_geometry import MOUSE_MOVE, MouseBatch, Point, RunningTotals, TabPath, fold_batch, public_metric
from app.storage.database import array_of_numbers, array_of_text, raw_cursor

# One round trip per message for all of its points and windows. A message's paths, its (session,
# tab) keys, come once each with the span of their points; a point names its path by number (its
# key's ordinality), so a session's id and tab are read once per path, not once per point. The
# points go in through a data-modifying CTE, which reports the new ones (kind 0); the windows
# (kind 1) read the snapshot from before the statement, so they hold the points as stored before
# this message, whatever the number of sessions and tabs a (merged) message holds.
_POINTS_AND_WINDOWS = """
WITH paths AS MATERIALIZED (
    SELECT * FROM unnest(%(path_sids)s::uuid[], %(path_tabs)s::text[], %(path_mins)s::float8[],
                         %(path_maxs)s::float8[]) WITH ORDINALITY AS g(sid, tab, t_min, t_max, i)
), new AS (
    INSERT INTO mouse_points (session_id, tab, t, x, y)
    SELECT g.sid, g.tab, p.t, p.x, p.y
    FROM unnest(%(p_paths)s::int[], %(p_ts)s::float8[], %(p_xs)s::float8[], %(p_ys)s::float8[])
         WITH ORDINALITY AS p(path, t, x, y, n)
    JOIN paths g ON g.i = p.path
    ORDER BY p.n
    ON CONFLICT DO NOTHING
    RETURNING session_id, tab, t, x, y
)
SELECT 0, g.i, new.t, new.x, new.y FROM new JOIN paths g ON g.sid = new.session_id AND g.tab = new.tab
UNION ALL
SELECT 1, g.i, w.t, w.x, w.y
FROM paths g
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
    totals = _lock_totals(connection, sorted({b.session_id for b in batches}))
    fresh, paths = _store_points(connection, batches)
    metrics = []
    for batch in batches:
        path_key = (batch.session_id, batch.tab)
        new = [p for p in batch.points if p in fresh.get(path_key, ())]
        for point in new:  # a point sent twice in one message is new once
            fresh[path_key].discard(point)
        metrics.append(fold_batch(batch, new, paths.get(path_key), totals[batch.session_id]))
    _save_totals_and_metrics(
        connection, [(sid, t.distance, t.peak_velocity, t.points) for sid, t in totals.items()], metrics
    )
    return [{"session_id": str(m["session_id"]), **public_metric(m)} for m in metrics]


def _lock_totals(connection, session_ids: list) -> dict:
    """Lock the sessions' totals rows (made if missing), in a stable order so workers never deadlock.

    The row lock serialises every message touching a session, across workers, until the commit.
    """
    rows = _lock_rows(connection, session_ids)
    return {sid: RunningTotals(distance, peak, points) for sid, distance, peak, points in rows}


def _store_points(connection, batches: list[MouseBatch]) -> tuple[dict, dict]:
    """Store every batch's points and load the stored path around them, in one round trip.

    Returns, per (session, tab), the points not stored before, and the path as stored before this
    message over the span of all of its points there, with one neighbour on each side.
    """
    by_path: dict[tuple, set[Point]] = {}
    for batch in batches:
        by_path.setdefault((batch.session_id, batch.tab), set()).update(batch.points)
    # Sorted, paths then points: the order the points were always inserted in.
    keys = sorted(by_path)
    path_numbers, ts, xs, ys, mins, maxs = [], [], [], [], [], []
    for number, key in enumerate(keys, start=1):
        points = sorted(by_path[key])
        path_numbers += [number] * len(points)
        ts += [t for t, _, _ in points]
        xs += [x for _, x, _ in points]
        ys += [y for _, _, y in points]
        mins.append(points[0][0])
        maxs.append(points[-1][0])
    with raw_cursor(connection) as cursor:
        cursor.execute(_POINTS_AND_WINDOWS, {
            "path_sids": array_of_text([sid for sid, _ in keys]), "path_tabs": array_of_text([tab for _, tab in keys]),
            "path_mins": array_of_numbers(mins), "path_maxs": array_of_numbers(maxs),
            "p_paths": array_of_numbers(path_numbers),
            "p_ts": array_of_numbers(ts), "p_xs": array_of_numbers(xs), "p_ys": array_of_numbers(ys),
        })
        fresh_by_number: dict[int, set[Point]] = {}
        windows: list[list[Point]] = [[] for _ in keys]
        for kind, number, t, x, y in cursor.fetchall():
            if kind == 0:
                fresh_by_number.setdefault(number, set()).add((t, x, y))
            else:
                windows[number - 1].append((t, x, y))
    fresh = {keys[number - 1]: points for number, points in fresh_by_number.items()}
    paths = {key: TabPath(sorted(window), fresh[key]) for key, window in zip(keys, windows, strict=True)
             if key in fresh}
    return fresh, paths


def _lock_rows(connection, session_ids: list[uuid.UUID]) -> list[tuple]:
    """Make the sessions' totals rows if missing and lock them, in one round trip.

    Returns (session_id, distance, peak_velocity, points) rows. `session_ids` must be sorted: rows
    are made and locked in that order, the same in every worker.
    """
    with raw_cursor(connection) as cursor:
        cursor.execute(
            "INSERT INTO mouse_totals (session_id, distance, peak_velocity, points) "
            "SELECT unnest(%(sids)s::uuid[]), 0, 0, 0 ON CONFLICT (session_id) DO NOTHING; "
            "SELECT session_id, distance, peak_velocity, points FROM mouse_totals "
            "WHERE session_id = ANY(%(sids)s::uuid[]) ORDER BY session_id FOR UPDATE",
            {"sids": array_of_text(session_ids)},
        )
        return [(uuid.UUID(str(sid)), *rest) for sid, *rest in cursor.fetchall()]


_METRIC_COLUMNS = ("session_id", "event_id", "t", "distance", "velocity", "peak_velocity", "points")


def _save_totals_and_metrics(connection, totals: list[tuple], metrics: list[dict]) -> None:
    """Write the sessions' new totals and append the batches' metric rows, in one round trip.

    `totals` holds (session_id, distance, peak_velocity, points); metric rows get their ids in the
    order given, which is the series' order.
    """
    with raw_cursor(connection) as cursor:
        cursor.execute(
            "UPDATE mouse_totals AS m SET distance = v.distance, peak_velocity = v.peak_velocity, "
            "points = v.points, updated_at = now() "
            "FROM unnest(%(sids)s::uuid[], %(distances)s::float8[], %(peaks)s::float8[], %(totals)s::bigint[]) "
            "AS v(session_id, distance, peak_velocity, points) WHERE m.session_id = v.session_id; "
            "INSERT INTO mouse_metrics (session_id, event_id, t, distance, velocity, peak_velocity, points) "
            "SELECT session_id, event_id, t, distance, velocity, peak_velocity, points "
            "FROM unnest(%(m_sids)s::uuid[], %(m_events)s::uuid[], %(m_ts)s::float8[], %(m_distances)s::float8[], "
            "%(m_velocities)s::float8[], %(m_peaks)s::float8[], %(m_points)s::bigint[]) WITH ORDINALITY "
            "AS v(session_id, event_id, t, distance, velocity, peak_velocity, points, i) ORDER BY i",
            {
                "sids": array_of_text([sid for sid, *_ in totals]),
                "distances": array_of_numbers([distance for _, distance, _, _ in totals]),
                "peaks": array_of_numbers([peak for _, _, peak, _ in totals]),
                "totals": array_of_numbers([points for *_, points in totals]),
                **{
                    key: (array_of_text if column.endswith("_id") else array_of_numbers)([m[column] for m in metrics])
                    for key, column in zip(
                        ("m_sids", "m_events", "m_ts", "m_distances", "m_velocities", "m_peaks", "m_points"),
                        _METRIC_COLUMNS, strict=True,
                    )
                },
            },
        )
