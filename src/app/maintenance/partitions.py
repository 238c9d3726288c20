"""Time partitions: made ahead of need, dropped once expired, listed for the operator.

The rule, for every table partitioned by time:
- the periodic task keeps the current window and EYE_PARTITIONS_AHEAD after it ready (the window is
  EYE_PARTITION_INTERVAL, a day for mouse_points);
- a row whose window has no partition (a late, back-filled or odd timestamp: year 1, a far past)
  lands in the table's DEFAULT partition: it is stored, no worker ever makes a partition, so none
  races another or waits on DDL. Partitions are only ever made for windows near the clock (and by
  migration 0003 for windows that held data), so no input can make their number grow: it is bounded
  by the retention over the interval, plus the ones ahead (events in the future are refused by the
  API beyond EYE_MAX_CLOCK_SKEW);
- when a new window's partition is made while the DEFAULT partition holds rows of it (the task did
  not run for a while), pg-partsmith moves those rows into it first;
- a partition whose window ended longer ago than the table's retention is detached and dropped:
  retention never runs a long DELETE. Rows of the DEFAULT partition older than the retention are
  deleted (it only ever holds out-of-range rows, so this is small), and so are sessions whose last
  event is older than EYE_RETENTION, with their applications and mouse totals, in batches.

pg-partsmith plans and applies the partition work (advisory lock per table, DDL with a lock timeout,
DEFAULT reconciliation); what it does not know (the default rows, sessions) is done here.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from flask import current_app
from pg_partsmith import (
    CreateAhead,
    DropAfter,
    EpochBoundaryCodec,
    KeepFor,
    LifecyclePolicy,
    LockAcquisitionError,
    OperationKind,
    PartitionGranularity,
    RangePartitioning,
    TablePartitionConfig,
    TimeBoundaries,
)
from pg_partsmith.sync import (
    PartitionLifecycleService,
    PostgresAdvisoryLockManager,
    PostgresMetadataProvider,
    PostgresPartitionRepository,
)
from sqlalchemy import text

from app.extensions import db

HOUR = timedelta(hours=1)
# Keep-forever tables still need a retention rule for pg-partsmith: one that never expires in practice.
_NEVER_EXPIRES = KeepFor(timedelta(days=100 * 366))
# Rows deleted per statement when retention clears the DEFAULT partitions and the sessions, so no
# statement holds its locks for long.
DELETE_BATCH = 10_000


@dataclass(frozen=True)
class TimePartitioned:
    """A table partitioned by range of a time column, and how long its rows are kept."""

    table: str
    column: str
    interval: str
    keep: timedelta | None
    # mouse_points.t counts epoch milliseconds (a float8), not a timestamptz.
    epoch_ms: bool = False
    # A row counts [column, column + span) (an hour of arrival_counts_hourly): it expires only once
    # that whole span is before the horizon.
    span: timedelta = timedelta(0)

    def horizon(self, now: datetime) -> datetime | None:
        return now - self.keep if self.keep else None


def partitioned_tables(config=None) -> list[TimePartitioned]:
    config = config or current_app.config
    interval, keep, errors_keep = config["EYE_PARTITION_INTERVAL"], config["EYE_RETENTION"], config["EYE_ERRORS_RETENTION"]
    counts_keep = None if None in (keep, errors_keep) else max(keep, errors_keep)
    return [
        TimePartitioned("events", "timestamp", interval, keep),
        # It counts both stored events and refusals: its partitions go with the longer retention,
        # and prune() deletes each kind of count with its own (the table is small).
        TimePartitioned("arrival_counts", "minute", interval, counts_keep),
        # The same counts per hour, kept and expired as the minutes are.
        TimePartitioned("arrival_counts_hourly", "hour", interval, counts_keep, span=HOUR),
        TimePartitioned("mouse_metrics", "computed_at", interval, keep),
        TimePartitioned("rejections", "received_at", interval, errors_keep),
        # Points are only kept while a late batch may still need them (see storage/mouse.py).
        TimePartitioned("mouse_points", "t", "day", config["EYE_MOUSE_LATE_LIMIT"], epoch_ms=True),
    ]


@dataclass
class Outcome:
    """What one ensure or prune did (or, dry, would do) to one table."""

    table: str
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    default_rows_deleted: int = 0
    notes: list[str] = field(default_factory=list)


def ensure(now: datetime | None = None, tables: list[TimePartitioned] | None = None) -> list[Outcome]:
    """Make the current window's partition and the next ones of every table, where missing."""
    outcomes = []
    for spec in tables or partitioned_tables():
        config, service = _partsmith_config(spec), _service()
        plan = service.plan(config, now=now).only(OperationKind.CREATE, OperationKind.ATTACH)
        outcome = Outcome(spec.table)
        if not plan.is_noop:
            _apply(service, config, plan, outcome)
        planned = [_short(op.target) for op in plan.creates]
        outcome.created = [name for name in planned if _exists(name)]
        outcomes.append(outcome)
    return outcomes


def prune(dry_run: bool = False, now: datetime | None = None,
          tables: list[TimePartitioned] | None = None) -> tuple[list[Outcome], int]:
    """Drop the expired partitions of every table, and the expired rows the partitions do not hold.

    Returns each table's outcome (dry: what would go) and the number of sessions removed (or, dry,
    that would be).
    """
    now = now or datetime.now(UTC)
    outcomes = []
    tables = tables or partitioned_tables()
    for spec in tables:
        outcome = Outcome(spec.table)
        outcomes.append(outcome)
        if spec.keep is None:
            continue
        config, service = _partsmith_config(spec), _service()
        plan = service.plan(config, now=now).only(OperationKind.DETACH, OperationKind.DROP)
        planned = [_short(op.target) for op in plan.detaches]
        if dry_run:
            outcome.dropped = planned
        else:
            if not plan.is_noop:
                _apply(service, config, plan, outcome)
            outcome.dropped = [name for name in planned if not _exists(name)]
        outcome.default_rows_deleted = _expire_default_rows(spec, spec.horizon(now), dry_run)
    keep = next(t.keep for t in tables if t.table == "events")
    errors_keep = next(t.keep for t in tables if t.table == "rejections")
    if not dry_run:
        _expire_counts(now - keep if keep else None, now - errors_keep if errors_keep else None)
    sessions = _expire_sessions(now - keep, dry_run) if keep else 0
    db.session.rollback()  # a dry run only read: its snapshot and locks end here
    return outcomes, sessions


def _apply(service: PartitionLifecycleService, config: TablePartitionConfig, plan, outcome: Outcome) -> None:
    """Apply a plan, keeping what went wrong as notes; another run busy with the table is not an error."""
    try:
        result = service.apply(config, plan, continue_on_error=True)
    except LockAcquisitionError:
        # Another upkeep run holds the table (two beats, or a hand run): it does the same work.
        outcome.notes.append("another upkeep run is working on this table: left to it")
        return
    # pg-partsmith warns of DEFAULT rows no partition covers; that is our rule (old or odd
    # timestamps live there), and prune() expires them itself.
    outcome.notes += [issue.error for issue in result.issues if "holds rows of" not in issue.error]


def _exists(name: str) -> bool:
    found = db.session.execute(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": f"public.{name}"}).scalar()
    db.session.rollback()
    return found


def list_partitions(tables: list[TimePartitioned] | None = None) -> list[dict]:
    """Every partition of every partitioned table: its range, a row estimate and its size."""
    rows = db.session.execute(text(
        "SELECT parent.relname AS table, child.relname AS partition, "
        "pg_get_expr(child.relpartbound, child.oid) AS bounds, "
        "greatest(child.reltuples, 0)::bigint AS rows_estimate, "
        "pg_total_relation_size(child.oid) AS bytes "
        "FROM pg_inherits i JOIN pg_class parent ON parent.oid = i.inhparent "
        "JOIN pg_class child ON child.oid = i.inhrelid "
        "WHERE parent.relname = ANY(:tables) AND parent.relnamespace = 'public'::regnamespace "
        "ORDER BY parent.relname, pg_get_expr(child.relpartbound, child.oid) = 'DEFAULT', child.relname"
    ), {"tables": [t.table for t in tables or partitioned_tables()]}).mappings().all()
    return [dict(row) for row in rows]


def _expire_default_rows(spec: TimePartitioned, horizon: datetime, dry_run: bool) -> int:
    """Delete (or count) the DEFAULT partition's rows older than the horizon, a batch at a time."""
    bound = int(horizon.timestamp() * 1000) if spec.epoch_ms else horizon
    where = f'"{spec.column}" < :bound'
    if spec.span:  # wholly before the horizon: column + span <= horizon
        bound, where = horizon - spec.span, f'"{spec.column}" <= :bound'
    default = f"{spec.table}_default"
    if dry_run:
        count = db.session.execute(text(f"SELECT count(*) FROM {default} WHERE {where}"), {"bound": bound}).scalar()
        db.session.rollback()
        return count
    deleted = 0
    while True:
        count = db.session.execute(text(
            f"DELETE FROM {default} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {default} WHERE {where} LIMIT :n))"
        ), {"bound": bound, "n": DELETE_BATCH}).rowcount
        db.session.commit()
        deleted += count
        if count < DELETE_BATCH:
            return deleted


def _expire_counts(stored_horizon: datetime | None, refused_horizon: datetime | None) -> None:
    """Delete the arrival counts whose events or refusals are past their own retention.

    An hour's row goes only once the whole hour is before the horizon (its last minute's too), so
    the hours never count less than their kept minutes.
    """
    for outcome, horizon in (("outcome = 'stored'", stored_horizon), ("outcome <> 'stored'", refused_horizon)):
        if horizon:
            db.session.execute(text(f"DELETE FROM arrival_counts WHERE {outcome} AND minute < :h"), {"h": horizon})
            db.session.execute(text(f"DELETE FROM arrival_counts_hourly WHERE {outcome} AND hour <= :h"),
                               {"h": horizon - HOUR})
    db.session.commit()


def _expire_sessions(horizon: datetime, dry_run: bool) -> int:
    """Remove (or count) sessions whose last event is older than the horizon, with their mouse totals.

    Their applications go with them (session_applications cascades).
    """
    if dry_run:
        count = db.session.execute(
            text("SELECT count(*) FROM sessions WHERE last_event_at < :horizon"), {"horizon": horizon}
        ).scalar()
        db.session.rollback()
        return count
    deleted = 0
    while True:
        count = db.session.execute(text(
            "WITH gone AS (DELETE FROM sessions WHERE session_id IN ("
            "    SELECT session_id FROM sessions WHERE last_event_at < :horizon LIMIT :n) "
            "  RETURNING session_id), "
            "totals AS (DELETE FROM mouse_totals m USING gone WHERE m.session_id = gone.session_id) "
            "SELECT count(*) FROM gone"
        ), {"horizon": horizon, "n": DELETE_BATCH}).scalar()
        db.session.commit()
        deleted += count
        if count < DELETE_BATCH:
            return deleted


def _short(name: str) -> str:
    return name.removeprefix("public.")


class FloatEpochMilliseconds(EpochBoundaryCodec):
    """Epoch milliseconds in a float8 column (mouse_points.t): PostgreSQL and Python print its
    values as `1778740401412.0` or `1700000000123.5`, which the integer codec does not read."""

    def __init__(self) -> None:
        super().__init__("milliseconds")

    def decode(self, literal: str) -> datetime | None:
        try:
            return datetime.fromtimestamp(float(str(literal).strip()) / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None


_GRANULARITY = {"day": PartitionGranularity.DAY, "week": PartitionGranularity.WEEK,
                "month": PartitionGranularity.MONTH}


def _partsmith_config(spec: TimePartitioned) -> TablePartitionConfig:
    boundaries = TimeBoundaries(granularity=_GRANULARITY[spec.interval],
                                codec=FloatEpochMilliseconds() if spec.epoch_ms else None)
    return TablePartitionConfig(
        table_name=spec.table,
        scheme=RangePartitioning(key=spec.column, boundaries=boundaries),
        lifecycle=LifecyclePolicy(
            # The current window and the ones ahead.
            creation=CreateAhead(count=current_app.config["EYE_PARTITIONS_AHEAD"] + 1),
            retention=KeepFor(spec.keep) if spec.keep else _NEVER_EXPIRES,
            # Dropped in the run that detaches it: retention is the operator's decision already.
            drop=DropAfter(grace=timedelta(0)),
        ),
    )


# A DDL statement waiting for its lock makes every later statement on the table queue behind it
# (a DETACH needs an exclusive lock on the parent: with a DEFAULT partition it cannot be
# CONCURRENTLY). So it waits half a second at most, then gives up until the next run (an hour).
DDL_LOCK_TIMEOUT_MS = 500


def _service() -> PartitionLifecycleService:
    engine = db.engine
    return PartitionLifecycleService(
        repo=PostgresPartitionRepository(engine, ddl_lock_timeout_ms=DDL_LOCK_TIMEOUT_MS,
                                         drop_lock_timeout_ms=DDL_LOCK_TIMEOUT_MS),
        metadata=PostgresMetadataProvider(engine),
        locks=PostgresAdvisoryLockManager(engine),
    )
