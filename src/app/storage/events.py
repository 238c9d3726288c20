"""Stores events once each, adds the new ones to their sessions and counts their arrival (worker side).

The database's unique key, (application, event_id, timestamp), decides what is new: a redelivered
message inserts nothing, so only new events count towards their session.
"""

import uuid
from collections import defaultdict
from datetime import datetime

import orjson

from app.storage.arrivals import COUNT_ARRIVALS, STORED, arrival_parameters, minute_of
from app.storage.database import array_of_numbers, array_of_text, raw_cursor


def store_events(parts: list[tuple[int, datetime, list[dict]]]) -> list[tuple[int, list[dict]]]:
    """Insert the events of every part `(application_id, received_at, events)` in one statement.

    Returns each part's application with its new events (with `timestamp_dt`), in the order sent.
    One statement for the whole message: a worker's group of single-event messages is many parts,
    and one INSERT each was a round trip and a statement each.
    """
    rows = [
        {
            "application_id": application_id,
            "event_id": uuid.UUID(e["event_id"]),
            "session_id": uuid.UUID(e["session_id"]),
            "category": e["category"],
            "name": e["name"],
            "data": e["data"],
            "timestamp": datetime.fromisoformat(e["timestamp"]),
            "received_at": received_at,
        }
        for application_id, received_at, events in parts
        for e in events
    ]
    inserted = _insert_rows(rows) if rows else set()
    new_by_application = []
    position = 0
    for application_id, received_at, events in parts:
        new = []
        for event in events:
            row = rows[position]
            position += 1
            identity = (application_id, row["event_id"], row["timestamp"])
            if identity in inserted:
                inserted.discard(identity)  # the same event twice in one message is one event
                new.append({**event, "timestamp_dt": row["timestamp"], "received_at_dt": received_at})
        new_by_application.append((application_id, new))
    return new_by_application


def add_to_sessions(new_by_application: list[tuple[int, list[dict]]]) -> None:
    """Count new events into their sessions and their minute of arrival, and note which
    applications wrote to each session."""
    per_session: dict[str, list[datetime]] = defaultdict(list)
    seen_by: set[tuple[str, int]] = set()
    arrivals: dict[tuple[datetime, str, str], int] = defaultdict(int)
    for application_id, events in new_by_application:
        for event in events:
            per_session[event["session_id"]].append(event["timestamp_dt"])
            seen_by.add((event["session_id"], application_id))
            arrivals[(minute_of(event["received_at_dt"]), event["category"], event["name"])] += 1
    if not per_session:
        return
    # Sorted: every worker locks session rows in the same order, so two never deadlock on them.
    rows = [
        {
            "session_id": uuid.UUID(session_id),
            "first_event_at": min(times),
            "last_event_at": max(times),
            "event_count": len(times),
        }
        for session_id, times in sorted(per_session.items())
    ]
    pairs = sorted(seen_by)
    _record_sessions(rows, pairs, sorted(arrivals.items()))


def _insert_rows(rows: list[dict]) -> set[tuple[int, uuid.UUID, datetime]]:
    """Insert events; returns the identities of the new ones (a retry of a stored one is skipped)."""
    with raw_cursor() as cursor:
        cursor.execute(
            "INSERT INTO events (application_id, event_id, session_id, category, name, data, timestamp, received_at) "
            "SELECT * FROM unnest(%(applications)s::int[], %(event_ids)s::uuid[], %(session_ids)s::uuid[], "
            "%(categories)s::text[], %(names)s::text[], %(data)s::jsonb[], %(timestamps)s::timestamptz[], "
            "%(received)s::timestamptz[]) "
            "ON CONFLICT (application_id, event_id, timestamp) DO NOTHING "
            "RETURNING application_id, event_id, timestamp",
            {
                "applications": array_of_numbers([r["application_id"] for r in rows]),
                "event_ids": array_of_text([r["event_id"] for r in rows]),
                "session_ids": array_of_text([r["session_id"] for r in rows]),
                "categories": array_of_text([r["category"] for r in rows]),
                "names": array_of_text([r["name"] for r in rows]),
                "data": array_of_text([orjson.dumps(r["data"]).decode() for r in rows]),
                "timestamps": array_of_text([r["timestamp"] for r in rows]),
                "received": array_of_text([r["received_at"] for r in rows]),
            },
        )
        returned = cursor.fetchall()
    return {(application_id, uuid.UUID(str(event_id)), timestamp) for application_id, event_id, timestamp in returned}


def _record_sessions(rows: list[dict], pairs: list[tuple[str, int]],
                     arrivals: list[tuple[tuple[datetime, str, str], int]]) -> None:
    """Add new events to their sessions and their minutes of arrival atomically, and note which
    applications wrote to the sessions.

    Concurrent workers add up, never overwrite. The statements go in one round trip; rows come
    sorted, so every worker locks sessions (and arrival counts) in the same order and none
    deadlocks on them.
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
            "SELECT * FROM unnest(%(pair_sids)s::uuid[], %(pair_apps)s::int[]) ON CONFLICT DO NOTHING; "
            + COUNT_ARRIVALS,
            {
                "sids": array_of_text([r["session_id"] for r in rows]),
                "firsts": array_of_text([r["first_event_at"] for r in rows]),
                "lasts": array_of_text([r["last_event_at"] for r in rows]),
                "counts": array_of_numbers([r["event_count"] for r in rows]),
                "pair_sids": array_of_text([sid for sid, _ in pairs]),
                "pair_apps": array_of_numbers([application_id for _, application_id in pairs]),
                **arrival_parameters([(minute, STORED, category, name, count)
                                      for (minute, category, name), count in arrivals]),
            },
        )
