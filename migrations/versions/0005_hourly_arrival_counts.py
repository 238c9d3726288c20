"""hourly arrival counts: arrival_counts summed per hour of arrival, for the volume chart's long windows

arrival_counts_hourly holds, per hour of arrival (UTC), outcome and type, the sum of that hour's
arrival_counts rows. The workers keep both in one statement from now on (app/storage/arrivals.py);
GET /api/v1/stats/volume reads it for steps of whole hours (a month is 60 times fewer rows).

Partitioned by range of `hour` as arrival_counts is by `minute` (migration 0003): a DEFAULT
partition, the current window of EYE_PARTITION_INTERVAL and EYE_PARTITIONS_AHEAD after it, and also
every window of the last 400 days holding counts, so the backfill lands in its windows and not in
the DEFAULT partition (older counts do, as in 0003). The upkeep (app/maintenance/partitions.py)
then keeps it as it keeps arrival_counts.

Backfilled from arrival_counts in the migration's transaction. Workers of the previous version
count in minutes only: stop them before upgrading (the compose file's migrate service runs before
the workers start), or what they count meanwhile is missing from the hours.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 12:30:00

"""
import os
from datetime import UTC, datetime, timedelta

from alembic import op
from sqlalchemy import text

from app.config import partition_interval
from app.maintenance.windows import next_window, window_name, window_starts

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

TABLE = "arrival_counts_hourly"
BACKFILL_DAYS = 400  # as in 0003: windows older than this holding counts get no partition


def upgrade():
    bind = op.get_bind()
    bind.execute(text("SET LOCAL timezone = 'UTC'"))  # date_trunc(interval, …) below cuts UTC windows
    interval = partition_interval()
    ahead = int(os.environ.get("EYE_PARTITIONS_AHEAD", "3"))
    now = datetime.now(UTC)

    op.execute(
        f"CREATE TABLE {TABLE} (hour TIMESTAMPTZ NOT NULL, outcome VARCHAR(32) NOT NULL, "
        "category VARCHAR(64) NOT NULL, name VARCHAR(64) NOT NULL, count BIGINT NOT NULL, "
        "PRIMARY KEY (hour, outcome, category, name)) PARTITION BY RANGE (hour)"
    )
    op.execute(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT")
    with_counts = bind.execute(text(
        "SELECT DISTINCT date_trunc(:interval, minute) FROM arrival_counts WHERE minute >= :oldest"
    ), {"interval": interval, "oldest": now - timedelta(days=BACKFILL_DAYS)}).scalars().all()
    for start in sorted(set(with_counts) | set(window_starts(interval, now, ahead + 1))):
        end = next_window(interval, start)
        op.execute(f"CREATE TABLE {window_name(TABLE, interval, start)} PARTITION OF {TABLE} "
                   f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')")
    # The same rule as the workers' (date_trunc in UTC whatever the session's time zone).
    op.execute(
        f"INSERT INTO {TABLE} (hour, outcome, category, name, count) "
        "SELECT date_trunc('hour', minute, 'UTC'), outcome, category, name, sum(count) FROM arrival_counts "
        "GROUP BY 1, 2, 3, 4"
    )


def downgrade():
    op.execute(f"DROP TABLE {TABLE}")
