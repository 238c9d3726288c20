"""PostgreSQL bulk writes: many rows per statement, and few round trips per message.

Profiled with 100-event messages, SQLAlchemy's compilation of multi-row statements cost as much as
PostgreSQL's own work; these statements are plain SQL with nothing compiled per call (rows go in
through execute_values, or as one array per column through unnest). Statements whose results are
not needed in between share one round trip. The constraints still decide: ON CONFLICT on the
unique keys, in the caller's transaction.
"""

import uuid

import orjson
from psycopg2.extras import Json, execute_values

from app.extensions import db


def raw_cursor(connection=None):
    """A psycopg2 cursor on `connection` (default: the session's), inside its transaction."""
    connection = db.session.connection() if connection is None else connection
    return connection.connection.dbapi_connection.cursor()


def _json(value) -> Json:
    return Json(value, dumps=lambda v: orjson.dumps(v).decode())


def insert_events(rows: list[dict]) -> set[uuid.UUID]:
    """Insert events; returns the event_ids that were new (a retry of a stored one is skipped)."""
    values = [
        (r["application_id"], str(r["event_id"]), str(r["session_id"]), r["category"], r["name"],
         _json(r["data"]), r["timestamp"], r["received_at"])
        for r in rows
    ]
    with raw_cursor() as cursor:
        returned = execute_values(
            cursor,
            "INSERT INTO events (application_id, event_id, session_id, category, name, data, timestamp, received_at) "
            "VALUES %s ON CONFLICT (application_id, event_id) DO NOTHING RETURNING event_id",
            values,
            template="(%s, %s::uuid, %s::uuid, %s, %s, %s, %s, %s)",
            page_size=1000,
            fetch=True,
        )
    return {uuid.UUID(str(row[0])) for row in returned}


def record_sessions(rows: list[dict], pairs: list[tuple[str, int]]) -> None:
    """Add new events to their sessions atomically, and note which applications wrote to them.

    Concurrent workers add up, never overwrite. Both statements go in one round trip; rows come
    sorted, so every worker locks sessions in the same order and none deadlocks on them.
    """
    with raw_cursor() as cursor:
        cursor.execute(
            "INSERT INTO sessions (session_id, first_event_at, last_event_at, event_count) "
            "SELECT * FROM unnest(%(sids)s::uuid[], %(firsts)s::timestamptz[], %(lasts)s::timestamptz[], "
            "%(counts)s::bigint[]) "
            "ON CONFLICT (session_id) DO UPDATE SET "
            "first_event_at = LEAST(sessions.first_event_at, EXCLUDED.first_event_at), "
            "last_event_at = GREATEST(sessions.last_event_at, EXCLUDED.last_event_at), "
            "event_count = sessions.event_count + EXCLUDED.event_count; "
            "INSERT INTO session_applications (session_id, application_id) "
            "SELECT * FROM unnest(%(pair_sids)s::uuid[], %(pair_apps)s::int[]) ON CONFLICT DO NOTHING",
            {
                "sids": [str(r["session_id"]) for r in rows],
                "firsts": [r["first_event_at"] for r in rows],
                "lasts": [r["last_event_at"] for r in rows],
                "counts": [r["event_count"] for r in rows],
                "pair_sids": [str(sid) for sid, _ in pairs],
                "pair_apps": [application_id for _, application_id in pairs],
            },
        )


def lock_mouse_totals(connection, session_ids: list[uuid.UUID]) -> list[tuple]:
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
            {"sids": [str(sid) for sid in session_ids]},
        )
        return [(uuid.UUID(str(sid)), *rest) for sid, *rest in cursor.fetchall()]


_METRIC_COLUMNS = ("session_id", "event_id", "t", "distance", "velocity", "peak_velocity", "points")


def save_mouse_totals_and_metrics(connection, totals: list[tuple], metrics: list[dict]) -> None:
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
                "sids": [str(sid) for sid, *_ in totals],
                "distances": [distance for _, distance, _, _ in totals],
                "peaks": [peak for _, _, peak, _ in totals],
                "totals": [points for *_, points in totals],
                **{
                    key: [str(m[column]) if column.endswith("_id") else m[column] for m in metrics]
                    for key, column in zip(
                        ("m_sids", "m_events", "m_ts", "m_distances", "m_velocities", "m_peaks", "m_points"),
                        _METRIC_COLUMNS, strict=True,
                    )
                },
            },
        )
