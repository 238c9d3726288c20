"""Counts of what arrived, per minute of arrival, outcome and type (the arrival_counts rollup).

Written in the transaction that stores the events or rejections it counts, and only for the new
ones, so a redelivered message counts nothing twice and a rollback counts nothing at all.
"""

from collections import Counter
from datetime import datetime

STORED = "stored"

# Rows must come sorted: every worker then locks the (hot) counter rows in the same order.
COUNT_ARRIVALS = (
    "INSERT INTO arrival_counts (minute, outcome, category, name, count) "
    "SELECT * FROM unnest(%(arrival_minutes)s::timestamptz[], %(arrival_outcomes)s::text[], "
    "%(arrival_categories)s::text[], %(arrival_names)s::text[], %(arrival_counts)s::bigint[]) "
    "ON CONFLICT (minute, outcome, category, name) DO UPDATE SET count = arrival_counts.count + EXCLUDED.count"
)


def minute_of(instant: datetime) -> datetime:
    return instant.replace(second=0, microsecond=0)


def arrival_parameters(rows: list[tuple[datetime, str, str, str, int]]) -> dict:
    """COUNT_ARRIVALS's parameters for (minute, outcome, category, name, count) rows, sorted."""
    rows = sorted(rows)
    return {
        "arrival_minutes": [row[0] for row in rows],
        "arrival_outcomes": [row[1] for row in rows],
        "arrival_categories": [row[2] for row in rows],
        "arrival_names": [row[3] for row in rows],
        "arrival_counts": [row[4] for row in rows],
    }


def rejection_counts(rejections) -> list[tuple[datetime, str, str, str, int]]:
    """Rows for new rejections given as (received_at, kind, category, name)."""
    counts = Counter((minute_of(received_at), kind, category or "", name or "")
                     for received_at, kind, category, name in rejections)
    return [(*key, count) for key, count in counts.items()]
