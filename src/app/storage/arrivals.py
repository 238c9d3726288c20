"""Counts of what arrived, per minute and per hour of arrival, outcome and type (the arrival_counts
and arrival_counts_hourly rollups).

Written in the transaction that stores the events or rejections it counts, and only for the new
ones, so a redelivered message counts nothing twice and a rollback counts nothing at all. The hours
are written by the same statement as the minutes, from the same rows, so an hour's row is always
the sum of its minutes' (the hour of a minute: date_trunc('hour', minute, 'UTC')).
"""

from collections import Counter
from datetime import datetime

from app.storage.database import array_of_numbers, array_of_text

STORED = "stored"

# One statement, one round trip: the minutes, then the hours summed from the same rows.
# Rows must come sorted: every worker then locks the (hot) counter rows in the same order, the
# minutes first (in their order), then the hours (sorted by the statement). The hours' INSERT reads
# its rows only once the scalar subquery over `minutes` is done (a one-time filter, evaluated before
# its first row): so every minute row is written, and locked, before the first hour row is.
COUNT_ARRIVALS = (
    "WITH arrived (minute, outcome, category, name, count) AS ("
    "SELECT * FROM unnest(%(arrival_minutes)s::timestamptz[], %(arrival_outcomes)s::text[], "
    "%(arrival_categories)s::text[], %(arrival_names)s::text[], %(arrival_counts)s::bigint[])), "
    "minutes AS ("
    "INSERT INTO arrival_counts (minute, outcome, category, name, count) "
    "SELECT minute, outcome, category, name, count FROM arrived "
    "ON CONFLICT (minute, outcome, category, name) DO UPDATE SET count = arrival_counts.count + EXCLUDED.count "
    "RETURNING 1) "
    "INSERT INTO arrival_counts_hourly (hour, outcome, category, name, count) "
    "SELECT date_trunc('hour', minute, 'UTC'), outcome, category, name, sum(count) FROM arrived "
    "WHERE (SELECT count(*) FROM minutes) > 0 "
    "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 "
    "ON CONFLICT (hour, outcome, category, name) DO UPDATE SET count = arrival_counts_hourly.count + EXCLUDED.count"
)


def minute_of(instant: datetime) -> datetime:
    return instant.replace(second=0, microsecond=0)


def arrival_parameters(rows: list[tuple[datetime, str, str, str, int]]) -> dict:
    """COUNT_ARRIVALS's parameters for (minute, outcome, category, name, count) rows, sorted."""
    rows = sorted(rows)
    return {
        "arrival_minutes": array_of_text([row[0] for row in rows]),
        "arrival_outcomes": array_of_text([row[1] for row in rows]),
        "arrival_categories": array_of_text([row[2] for row in rows]),
        "arrival_names": array_of_text([row[3] for row in rows]),
        "arrival_counts": array_of_numbers([row[4] for row in rows]),
    }


def rejection_counts(rejections) -> list[tuple[datetime, str, str, str, int]]:
    """Rows for new rejections given as (received_at, kind, category, name)."""
    counts = Counter((minute_of(received_at), kind, category or "", name or "")
                     for received_at, kind, category, name in rejections)
    return [(*key, count) for key, count in counts.items()]
