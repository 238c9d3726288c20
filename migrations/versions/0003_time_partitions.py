"""time partitions: events, rejections and the mouse tables partitioned by time; a rollup of arrivals

Each growing table becomes a partitioned table with the same name, columns and indexes, and every
row is copied into it (ids and sequences kept):
- events by `timestamp` (its identity becomes (application_id, event_id, timestamp): PostgreSQL
  requires the partition key in every unique key of a partitioned table);
- rejections by `received_at`, mouse_metrics by `computed_at`, with the same interval;
- mouse_points by `t` (epoch milliseconds), a day per partition.
Partitions are made for every window that holds rows from the last 400 days, and for the current
window and EYE_PARTITIONS_AHEAD after it; older rows land in each table's DEFAULT partition, as any
event does whose window has no partition (see app/maintenance/partitions.py for the rule).
Also: sessions get an index on last_event_at (retention removes them by it), mouse_totals a
created_at (a session's metric series lies between created_at and updated_at, which bounds its
reads), and arrival_counts counts stored events and refusals per minute of arrival and type.

The copy runs in the migration's transaction: on a large database it takes a while (the growth
bench in docs/benchmarks.md gives the rate), and the tables are locked meanwhile.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 07:00:00

"""
import os
from datetime import UTC, datetime, timedelta

from alembic import op
from sqlalchemy import text

from app.config import partition_interval
from app.maintenance.windows import epoch_ms, next_window, window_name, window_starts

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

BACKFILL_DAYS = 400

# Each table's partition key (mouse_points.t counts epoch milliseconds).
TIME_COLUMNS = {
    "events": "timestamp",
    "rejections": "received_at",
    "mouse_metrics": "computed_at",
    "mouse_points": "t",
    "arrival_counts": "minute",
}

CREATE = {
    "events": """
        CREATE TABLE {name} (
            id BIGINT NOT NULL DEFAULT nextval('events_id_seq'),
            application_id INTEGER NOT NULL CONSTRAINT events_application_id_fkey REFERENCES applications (id),
            event_id UUID NOT NULL,
            session_id UUID NOT NULL,
            category VARCHAR(64) NOT NULL,
            name VARCHAR(64) NOT NULL,
            data JSONB NOT NULL,
            timestamp TIMESTAMPTZ NOT NULL,
            received_at TIMESTAMPTZ NOT NULL
        ) {partitioning}""",
    "rejections": """
        CREATE TABLE {name} (
            id UUID NOT NULL,
            received_at TIMESTAMPTZ NOT NULL,
            application_id INTEGER CONSTRAINT rejections_application_id_fkey REFERENCES applications (id)
                ON DELETE SET NULL,
            kind VARCHAR(32) NOT NULL,
            category VARCHAR(64),
            name VARCHAR(64),
            errors JSONB NOT NULL,
            raw TEXT NOT NULL
        ) {partitioning}""",
    "mouse_metrics": """
        CREATE TABLE {name} (
            id BIGINT NOT NULL DEFAULT nextval('mouse_metrics_id_seq'),
            session_id UUID NOT NULL,
            event_id UUID NOT NULL,
            t FLOAT8 NOT NULL,
            distance FLOAT8 NOT NULL,
            velocity FLOAT8 NOT NULL,
            peak_velocity FLOAT8 NOT NULL,
            points BIGINT NOT NULL,
            computed_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
        ) {partitioning}""",
    "mouse_points": """
        CREATE TABLE {name} (
            session_id UUID NOT NULL,
            tab VARCHAR(64) NOT NULL,
            t FLOAT8 NOT NULL,
            x FLOAT8 NOT NULL,
            y FLOAT8 NOT NULL
        ) {partitioning}""",
}

# Keys and indexes, made after the rows are in (faster than keeping them up row by row).
INDEXES = {
    "events": [
        "ALTER TABLE events ADD PRIMARY KEY (application_id, event_id, timestamp)",
        "CREATE INDEX ix_events_session_order ON events (session_id, timestamp, received_at, id)",
        "CREATE INDEX ix_events_order ON events (timestamp, received_at, id)",
        "CREATE INDEX ix_events_type_order ON events (category, name, timestamp, received_at, id)",
        "CREATE INDEX ix_events_category_order ON events (category, timestamp, received_at, id)",
        "CREATE INDEX ix_events_name_order ON events (name, timestamp, received_at, id)",
        "CREATE INDEX ix_events_application_order ON events (application_id, timestamp, received_at, id)",
        "CREATE INDEX ix_events_received ON events (received_at)",
    ],
    "rejections": [
        "ALTER TABLE rejections ADD PRIMARY KEY (id, received_at)",
        "CREATE INDEX ix_rejections_received ON rejections (received_at, id)",
        "CREATE INDEX ix_rejections_kind_received ON rejections (kind, received_at, id)",
        "CREATE INDEX ix_rejections_application_received ON rejections (application_id, received_at, id)",
    ],
    "mouse_metrics": [
        "ALTER TABLE mouse_metrics ADD PRIMARY KEY (id, computed_at)",
        "CREATE INDEX ix_mouse_metrics_session ON mouse_metrics (session_id, id)",
    ],
    "mouse_points": [
        "ALTER TABLE mouse_points ADD PRIMARY KEY (session_id, tab, t, x, y)",
    ],
}

SEQUENCES = {"events": "events_id_seq", "mouse_metrics": "mouse_metrics_id_seq"}


def upgrade():
    bind = op.get_bind()
    bind.execute(text("SET LOCAL timezone = 'UTC'"))
    interval = partition_interval()
    ahead = int(os.environ.get("EYE_PARTITIONS_AHEAD", "3"))
    now = datetime.now(UTC)
    for table in ("events", "rejections", "mouse_metrics", "mouse_points"):
        _partition(bind, table, "day" if table == "mouse_points" else interval, now, ahead)

    op.execute(
        "CREATE TABLE arrival_counts (minute TIMESTAMPTZ NOT NULL, outcome VARCHAR(32) NOT NULL, "
        "category VARCHAR(64) NOT NULL, name VARCHAR(64) NOT NULL, count BIGINT NOT NULL, "
        "PRIMARY KEY (minute, outcome, category, name)) PARTITION BY RANGE (minute)"
    )
    op.execute("CREATE TABLE arrival_counts_default PARTITION OF arrival_counts DEFAULT")
    _make_partitions(bind, "arrival_counts", interval, window_starts(interval, now, ahead + 1))
    # What is stored already is counted now, so the summary's figures carry over.
    op.execute(
        "INSERT INTO arrival_counts (minute, outcome, category, name, count) "
        "SELECT date_trunc('minute', received_at), 'stored', category, name, count(*) FROM events "
        "GROUP BY 1, 3, 4 "
        "UNION ALL "
        "SELECT date_trunc('minute', received_at), kind, coalesce(category, ''), coalesce(name, ''), count(*) "
        "FROM rejections GROUP BY 1, 2, 3, 4"
    )

    op.execute("CREATE INDEX ix_sessions_last_event ON sessions (last_event_at)")
    op.execute("ALTER TABLE mouse_totals ADD COLUMN created_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP")
    op.execute(
        "UPDATE mouse_totals AS m SET created_at = least(m.updated_at, "
        "coalesce((SELECT min(computed_at) FROM mouse_metrics s WHERE s.session_id = m.session_id), m.updated_at))"
    )


def _partition(bind, table: str, interval: str, now: datetime, ahead: int) -> None:
    """Replace `table` by a partitioned table of the same name holding the same rows."""
    column = TIME_COLUMNS[table]
    sequence = SEQUENCES.get(table)
    if sequence:
        op.execute(f"ALTER SEQUENCE {sequence} OWNED BY NONE")
    op.execute(CREATE[table].format(name=f"{table}__new", partitioning=f"PARTITION BY RANGE ({column})"))
    op.execute(f"CREATE TABLE {table}__new_default PARTITION OF {table}__new DEFAULT")
    _make_partitions(bind, f"{table}__new", interval, _windows_with_rows(bind, table, column, interval, now, ahead),
                     final_table=table)
    op.execute(f"INSERT INTO {table}__new SELECT {_columns(table)} FROM {table}")
    op.execute(f"DROP TABLE {table}")
    op.execute(f"ALTER TABLE {table}__new RENAME TO {table}")
    op.execute(f"ALTER TABLE {table}__new_default RENAME TO {table}_default")
    if sequence:
        op.execute(f"ALTER SEQUENCE {sequence} OWNED BY {table}.id")
    for statement in INDEXES[table]:
        op.execute(statement)


def _windows_with_rows(bind, table: str, column: str, interval: str, now: datetime, ahead: int) -> list[datetime]:
    """The current window, the `ahead` next ones, and every window of the last BACKFILL_DAYS holding rows."""
    oldest = now - timedelta(days=BACKFILL_DAYS)
    if column == "t":
        starts = bind.execute(text(
            f"SELECT DISTINCT date_trunc(:interval, to_timestamp(t / 1000.0)) FROM {table} WHERE t >= :oldest"
        ), {"interval": interval, "oldest": epoch_ms(oldest)}).scalars().all()
    else:
        starts = bind.execute(text(
            f"SELECT DISTINCT date_trunc(:interval, {column}) FROM {table} WHERE {column} >= :oldest"
        ), {"interval": interval, "oldest": oldest}).scalars().all()
    return sorted(set(starts) | set(window_starts(interval, now, ahead + 1)))


def _make_partitions(bind, parent: str, interval: str, starts: list[datetime], final_table: str | None = None) -> None:
    table = final_table or parent
    for start in starts:
        end = next_window(interval, start)
        if TIME_COLUMNS[table] == "t":
            bounds = f"FROM ({epoch_ms(start)}) TO ({epoch_ms(end)})"
        else:
            bounds = f"FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        op.execute(f"CREATE TABLE {window_name(table, interval, start)} PARTITION OF {parent} FOR VALUES {bounds}")


def _columns(table: str) -> str:
    return {
        "events": "id, application_id, event_id, session_id, category, name, data, timestamp, received_at",
        "rejections": "id, received_at, application_id, kind, category, name, errors, raw",
        "mouse_metrics": "id, session_id, event_id, t, distance, velocity, peak_velocity, points, computed_at",
        "mouse_points": "session_id, tab, t, x, y",
    }[table]


def downgrade():
    """Back to plain tables with every row (the identity of events goes back to (application, event_id),
    so two events that differ only by timestamp cannot both go back: the downgrade then fails)."""
    op.execute("ALTER TABLE mouse_totals DROP COLUMN created_at")
    op.execute("DROP INDEX ix_sessions_last_event")
    op.execute("DROP TABLE arrival_counts")
    for table in ("events", "rejections", "mouse_metrics", "mouse_points"):
        sequence = SEQUENCES.get(table)
        if sequence:
            op.execute(f"ALTER SEQUENCE {sequence} OWNED BY NONE")
        op.execute(CREATE[table].format(name=f"{table}__plain", partitioning=""))
        op.execute(f"INSERT INTO {table}__plain SELECT {_columns(table)} FROM {table}")
        op.execute(f"DROP TABLE {table}")
        op.execute(f"ALTER TABLE {table}__plain RENAME TO {table}")
        if sequence:
            op.execute(f"ALTER SEQUENCE {sequence} OWNED BY {table}.id")
        for statement in INDEXES[table]:
            statement = {
                "ALTER TABLE events ADD PRIMARY KEY (application_id, event_id, timestamp)":
                    "ALTER TABLE events ADD PRIMARY KEY (id); "
                    "ALTER TABLE events ADD CONSTRAINT uq_events_application_event UNIQUE (application_id, event_id)",
                "ALTER TABLE rejections ADD PRIMARY KEY (id, received_at)": "ALTER TABLE rejections ADD PRIMARY KEY (id)",
                "ALTER TABLE mouse_metrics ADD PRIMARY KEY (id, computed_at)": "ALTER TABLE mouse_metrics ADD PRIMARY KEY (id)",
            }.get(statement, statement)
            op.execute(statement)
