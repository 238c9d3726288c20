"""A year of events (issue 13): what growth costs the partitioned schema and today's unpartitioned one.

    python bench/growth.py --sizes 0,5000000,15000000        # what fits in an hour on 2 shared cores
    python bench/growth.py                                   # 0 → 10 M → 30 M (estimated 2 h here: not run)
    python bench/growth.py --smoke                           # tiny sizes, under a minute: the tool runs

Two schemas, each in a database of its own (`eye_growth_<schema>_<random>` on --admin-url):
  - unpartitioned: migration 0002 with the code of the commit before partitioning (a git worktree of
    --base-ref, by default the parent of the commit that added migration 0003, or HEAD while it is
    uncommitted; made in --base-tree and removed at the end), as the service ran before;
  - partitioned: this tree's head (0003) and code, a partition per --interval (month) for the six
    months the bench loads.
Each runs its schema's code in a subprocess of its own (PYTHONPATH=<tree>/src), which migrates it
and measures; this process loads and measures sizes with SQL.

The events are loaded in steps (--sizes), both schemas side by side (nothing is measured meanwhile),
with server-side `INSERT … SELECT generate_series` in chunks of 500,000 into `events` (the parent,
for the partitioned schema: rows route to their partitions), the events' keys and indexes dropped
during each step and built again afterwards, then VACUUM ANALYZE and a CHECKPOINT. The data is that of
bench/queries.py (40 events per session, 5 s apart, the same mix of types and payloads), spread over
the **six whole months before the current one**; every chunk holds whole sessions and fills
`sessions` / `session_applications` as the worker would (one row per session). The bench's clock
("now") is the last hour of the sixth month, so the partition that takes new rows already holds a
full month: the worst case for the partitioned schema.

At each size, for each schema (the schemas in alternating order):
  (a) the worker's store rate: `store_message` (app.storage.message) called in process on messages
      of 2–8 parts of 1–10 events each (mixed: pageview 5 : cta click 2 : submit 1 : mouse move 2,
      a move carrying 20 points; and pageviews only) over 500 live sessions, timestamped "now".
      events/s = events stored ÷ time inside store_message; also the CPU per event of the calling
      process and of its PostgreSQL backend. Each figure is --rounds rounds (--store-seconds in all)
      alternated with the same measurement on a reference database of the same schema that holds
      no loaded events, so a drift of the shared machine shows in both (`vs ref`);
      at the largest size the partitioned schema is also measured writing into a fresh, empty month;
  (b) the read queries of bench/queries.py through Flask's test client (its `measure`), and
      EXPLAIN ANALYZE of the same statements (planning and execution time, relations read);
  (c) the size of the indexes an insert touches: every index of `events` (unpartitioned), the
      indexes of the partition that holds "now" (partitioned);
and after the largest size (d) the time to remove the oldest month: DETACH + DROP of its partition
against `DELETE FROM events WHERE timestamp` in that month, then dead tuples, VACUUM, sizes, free
space (pgstattuple_approx) and the indexes' leaf density (pgstatindex).

Then the interval study (--intervals, '' to skip): one partitioned database per interval (day,
week, month) holding --interval-events spread over --retention-days (400) before "now", with every
partition of that retention: planning + execution time of the session and category queries (also
a category page without time bounds, which reads every partition), their p95 through the test
client, and the store rate.

Prints tables; writes JSON (--json, default bench/results/growth-<largest size>.json). Every database
it made is dropped at the end, also on failure or ^C (--keep keeps them).
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import queries as qb  # noqa: E402  (bench/queries.py: its data mix, its seed helpers and its measure())

EVENTS_PER_SESSION = qb.EVENTS_PER_SESSION
CHUNK = 500_000  # rows per INSERT … SELECT, a multiple of EVENTS_PER_SESSION (whole sessions)
assert CHUNK % EVENTS_PER_SESSION == 0
MONTHS = 6
# Sessions start at least this long before the end of the loaded span, so their 40 events fit in it.
SESSION_MARGIN_S = 300
LIVE_SESSIONS = 500  # the sessions the store messages write to
MIXED = ["pageview"] * 5 + ["cta"] * 2 + ["submit"] + ["mouse"] * 2
PAGEVIEWS = ["pageview"]
PLAN_CASES = ("session", "category_1h", "type_1h", "category_unbounded")
# The tables that hold events' rows: the partitions, or the plain table (pg_partition_tree lists
# nothing for a table that is not partitioned).
LEAVES = ("(SELECT relid FROM pg_partition_tree('events') WHERE isleaf UNION ALL "
          "SELECT 'events'::regclass WHERE (SELECT relkind FROM pg_class WHERE oid = 'events'::regclass) = 'r')")


# --- Time layout ----------------------------------------------------------------------------------


def month_start(at: datetime) -> datetime:
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def previous_month(start: datetime) -> datetime:
    return month_start(start - timedelta(days=1))


def layout(real_now: datetime, retention_days: int) -> dict:
    """The loaded span (six whole months before the current one), the bench's "now" and its fresh month."""
    current = month_start(real_now)
    first = current
    for _ in range(MONTHS):
        first = previous_month(first)
    return {
        "start": first,                                   # the first loaded month
        "end": current,                                   # the loaded span ends here (exclusive)
        "now": current - timedelta(minutes=45),           # new events: the last hour of the sixth month
        "fresh": current + timedelta(minutes=1),          # … or the first minutes of a new, empty month
        "oldest_month": (first, next_month(first)),       # what retention removes
        "interval_start": current - timedelta(days=retention_days),
    }


def next_month(start: datetime) -> datetime:
    return month_start(start + timedelta(days=32))


# --- Databases ------------------------------------------------------------------------------------


def engine_for(url: str, **options):
    return qb.engine_for(url, **options)


class Databases:
    """The bench's databases: made on the admin URL, dropped at the end."""

    def __init__(self, admin_url: str, keep: bool):
        self.admin_url = admin_url
        self.admin = engine_for(admin_url, isolation_level="AUTOCOMMIT")
        self.keep = keep
        self.made: list[str] = []

    def create(self, label: str) -> str:
        name = f"eye_growth_{label}_{uuid.uuid4().hex[:6]}"
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        print(f"database {name}", flush=True)
        return qb.with_database(self.admin_url, name)

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1].split("?")[0]
        if name not in self.made:
            return
        self.made.remove(name)
        if self.keep:
            print(f"kept: {url}", flush=True)
            return
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_all(self) -> None:
        for name in list(self.made):
            self.drop(qb.with_database(self.admin_url, name))
        self.admin.dispose()


def sql(engine, statement: str, params: dict | None = None, autocommit: bool = False):
    from sqlalchemy import text

    options = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    with engine.connect().execution_options(**options) as connection:
        result = connection.execute(text(statement), params or {})
        rows = result.all() if result.returns_rows else None
        if not autocommit:
            connection.commit()
    return rows


# --- Subprocesses running one tree's code -------------------------------------------------------


class Inner:
    """A subprocess running one tree's code (PYTHONPATH=<tree>/src) on one database, kept for many requests.

    Requests are JSON lines on its stdin; each answer is one line on its stdout starting with "@@ "
    (everything else the app prints goes to a log file).
    """

    def __init__(self, tree: Path, url: str, interval: str = "month"):
        self.tree, self.url = tree, url
        env = {**os.environ, "PYTHONPATH": str(tree / "src"), "DATABASE_URL": url, "SECRET_KEY": "bench",
               "EYE_KEY_CACHE_SECONDS": "60", "EYE_DATA_DIR": str(ROOT / "var" / "bench"),
               "EYE_PARTITION_INTERVAL": interval, "EYE_LOG_LEVEL": "WARNING"}
        self.log = tempfile.NamedTemporaryFile(prefix="eye-growth-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", str(tree)], env=env, cwd=str(tree),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1)

    def __call__(self, spec: dict) -> dict:
        self.process.stdin.write(json.dumps(spec, default=str) + "\n")
        self.process.stdin.flush()
        for line in self.process.stdout:
            if line.startswith("@@ "):
                answer = json.loads(line[3:])
                if "error" in answer:
                    raise RuntimeError(f"{spec['task']} failed in {self.tree}:\n{answer['error']}")
                return answer
        raise RuntimeError(f"the inner process ended ({self.tree}): see {self.log.name}\n"
                           + Path(self.log.name).read_text()[-4000:])

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


PARTITIONING_MIGRATION = "migrations/versions/0003_time_partitions.py"


def default_base_ref() -> str:
    """The commit before the one that added migration 0003 (HEAD while it is not committed)."""
    added = subprocess.run(["git", "-C", str(ROOT), "log", "--format=%H", "--diff-filter=A", "--",
                            PARTITIONING_MIGRATION], capture_output=True, text=True).stdout.split()
    return f"{added[-1]}^" if added else "HEAD"


def make_base_tree(path: Path, ref: str) -> bool:
    """A worktree of `ref` (the unpartitioned code) at `path`; True if this run made it."""
    if (path / "src" / "app").is_dir():
        return False
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), ref], check=True,
                   capture_output=True, text=True)
    return True


def remove_base_tree(path: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], capture_output=True)
    subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], capture_output=True)


# --- Schema setup ---------------------------------------------------------------------------------


def prepare(inner: Inner, revision: str, interval: str | None, lay: dict, since: datetime) -> dict:
    """Migrate, make the bench applications and (partitioned) the partitions the bench's rows need."""
    inner({"task": "migrate", "revision": revision})
    engine = engine_for(inner.url)
    try:
        for name in qb.APPLICATIONS:
            sql(engine, "INSERT INTO applications (name) VALUES (:n) ON CONFLICT DO NOTHING", {"n": name})
        ids = [row[0] for row in sql(engine, "SELECT id FROM applications WHERE name = ANY(:n) ORDER BY id",
                                     {"n": list(qb.APPLICATIONS)})]
        assert ids == list(range(ids[0], ids[0] + 3)), "bench applications not contiguous"
        made = make_partitions(engine, interval, lay, since) if interval else 0
    finally:
        engine.dispose()
    return {"applications": ids, "partitions_made": made}


def make_partitions(engine, interval: str, lay: dict, since: datetime) -> int:
    """Partitions for every window of [since, fresh month] (events), and for "now" and the fresh
    month (arrival_counts by the interval, mouse_points by day); existing ones are kept."""
    from app.maintenance.windows import epoch_ms, next_window, window_name, window_start

    def windows(table_interval: str, first: datetime, last: datetime) -> list[datetime]:
        starts, start = [], window_start(table_interval, first)
        while start <= last:
            starts.append(start)
            start = next_window(table_interval, start)
        return starts

    wanted = [("events", interval, s) for s in windows(interval, since, lay["fresh"] + timedelta(hours=1))]
    for at in (lay["now"], lay["fresh"]):
        wanted += [("arrival_counts", interval, s) for s in windows(interval, at, at + timedelta(hours=1))]
        wanted += [("mouse_points", "day", s) for s in windows("day", at - timedelta(hours=1),
                                                               at + timedelta(hours=1))]
    made = 0
    existing = {row[0] for row in sql(engine, "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace")}
    for table, table_interval, start in dict.fromkeys(wanted):
        name = window_name(table, table_interval, start)
        if name in existing:
            continue
        end = next_window(table_interval, start)
        bounds = (f"FROM ({epoch_ms(start)}) TO ({epoch_ms(end)})" if table == "mouse_points"
                  else f"FROM ('{start.isoformat()}') TO ('{end.isoformat()}')")
        sql(engine, f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES {bounds}")
        existing.add(name)
        made += 1
    return made


# --- Loading --------------------------------------------------------------------------------------


def seed_statement() -> str:
    """Rows :lo to :hi - 1, whole sessions (:first_session …, :m of them) interleaved as in
    bench/queries.py; their sessions inserted from the rows the same statement stored."""
    pick = []
    for number, (share, *_rest) in enumerate(qb.TYPES, start=1):
        pick += [number] * share
    categories = qb.sql_array([t[1] for t in qb.TYPES])
    names = qb.sql_array([t[2] for t in qb.TYPES])
    payloads = qb.sql_array([t[3] for t in qb.TYPES], "::jsonb")
    return f"""
        WITH stored AS (
            INSERT INTO events (application_id, event_id, session_id, category, name, data, timestamp, received_at)
            SELECT :first_application + p.s % 3, gen_random_uuid(), md5('session-' || p.s)::uuid,
                   ({categories})[p.t], ({names})[p.t], ({payloads})[p.t],
                   p.ts, p.ts + (50 + (p.i * 7919) % 450) * interval '1 millisecond'
            FROM (
                SELECT i, s, ({qb.sql_array(pick)})[1 + (hashint8(i) % 100 + 100) % 100] AS t,
                       CAST(:start AS timestamptz)
                           + ((hashtextextended('session-' || s, 0) % :span + :span) % :span) * interval '1 second'
                           + k * interval '5 seconds' + ((i * 40503) % 1000) * interval '1 millisecond' AS ts
                FROM (SELECT i, :first_session + (i - :lo) % :m AS s, (i - :lo) / :m AS k
                      FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint) - 1) AS i) AS numbered
            ) AS p
            RETURNING session_id, timestamp
        )
        INSERT INTO sessions (session_id, first_event_at, last_event_at, event_count)
        SELECT session_id, min(timestamp), max(timestamp), count(*) FROM stored GROUP BY session_id
    """


SESSION_APPLICATIONS = """
    INSERT INTO session_applications (session_id, application_id)
    SELECT md5('session-' || s)::uuid, :first_application + s % 3
    FROM generate_series(CAST(:first_session AS bigint), CAST(:first_session AS bigint) + :m - 1) AS s
"""


def event_keys(connection) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The events table's indexes and its primary / unique keys (name, definition), as migrated."""
    from sqlalchemy import text

    constraints = connection.execute(text(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'events'::regclass AND contype IN ('p', 'u') ORDER BY contype, conname")).all()
    indexes = connection.execute(text(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'events' "
        "AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = 'events'::regclass) "
        "ORDER BY indexname")).all()
    # A partitioned table's index reads `ON ONLY events`: built again on the parent, it must cascade.
    return ([(n, d.replace(" ON ONLY ", " ON ")) for n, d in indexes], [tuple(c) for c in constraints])


def load(url: str, lo: int, hi: int, lay: dict, span_start: datetime, span_end: datetime,
         first_application: int, label: str = "") -> dict:
    """Events lo … hi - 1 (whole sessions), then keys and indexes, VACUUM ANALYZE and a CHECKPOINT."""
    from sqlalchemy import text

    engine = engine_for(url)
    span = int((span_end - span_start).total_seconds()) - SESSION_MARGIN_S
    timings = {}
    try:
        with engine.connect() as connection:
            connection.execute(text("SET maintenance_work_mem = '1GB'"))
            connection.execute(text("SET work_mem = '256MB'"))
            indexes, constraints = event_keys(connection)
            for name, _ in constraints:
                connection.execute(text(f"ALTER TABLE events DROP CONSTRAINT {name}"))
            for name, _ in indexes:
                connection.execute(text(f"DROP INDEX {name}"))
            connection.commit()

            started = time.perf_counter()
            statement, applications = text(seed_statement()), text(SESSION_APPLICATIONS)
            for chunk_lo in range(lo, hi, CHUNK):
                chunk_hi = min(hi, chunk_lo + CHUNK)
                m = (chunk_hi - chunk_lo) // EVENTS_PER_SESSION
                params = {"lo": chunk_lo, "hi": chunk_hi, "m": m, "first_session": chunk_lo // EVENTS_PER_SESSION,
                          "start": span_start, "span": span, "first_application": first_application}
                connection.execute(statement, params)
                connection.execute(applications, params)
                connection.commit()
                print(f"  {label} loaded {chunk_hi:>11,} / {hi:,} ({time.perf_counter() - started:.0f} s)", flush=True)
            timings["insert_s"] = round(time.perf_counter() - started, 1)

            started = time.perf_counter()
            qb.build_keys(connection, indexes, constraints)
            timings["indexes_s"] = round(time.perf_counter() - started, 1)
            print(f"  {label} {len(indexes) + len(constraints)} keys and indexes built ({timings['indexes_s']} s)",
                  flush=True)

            started = time.perf_counter()
            auto = connection.execution_options(isolation_level="AUTOCOMMIT")
            auto.execute(text("VACUUM ANALYZE"))
            auto.execute(text("CHECKPOINT"))
            timings["vacuum_analyze_checkpoint_s"] = round(time.perf_counter() - started, 1)
            print(f"  {label} VACUUM ANALYZE, CHECKPOINT ({timings['vacuum_analyze_checkpoint_s']} s)", flush=True)
    finally:
        engine.dispose()
    rows = hi - lo
    timings["rows"] = rows
    timings["load_rows_per_s"] = round(rows / max(timings["insert_s"] + timings["indexes_s"], 1e-9))
    return timings


# --- Sizes ----------------------------------------------------------------------------------------


def hot_partition(interval: str, at: datetime) -> str:
    from app.maintenance.windows import window_name, window_start

    return window_name("events", interval, window_start(interval, at))


def sizes(url: str, interval: str | None, lay: dict) -> dict:
    """Events' heap and indexes, and the indexes a new row touches (all, or those of the hot partition)."""
    engine = engine_for(url)
    try:
        hot = hot_partition(interval, lay["now"]) if interval else "events"
        heap, indexes, partitions = sql(engine, f"""
            SELECT sum(pg_table_size(relid)), sum(pg_indexes_size(relid)), count(*) FROM {LEAVES} AS l(relid)""")[0]
        hot_indexes = {name: size for name, size in sql(engine, """
            SELECT c.relname, pg_relation_size(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            WHERE i.indrelid = to_regclass(:hot) ORDER BY c.relname""", {"hot": hot})}
        hot_rows, hot_heap = sql(engine, "SELECT greatest(reltuples, 0)::bigint, pg_table_size(oid) FROM pg_class "
                                         "WHERE oid = to_regclass(:hot)", {"hot": hot})[0]
        other = dict(sql(engine, """
            SELECT relname, pg_indexes_size(oid) FROM pg_class
            WHERE relname IN ('sessions', 'session_applications', 'mouse_totals')
              AND relnamespace = 'public'::regnamespace"""))
        database = sql(engine, "SELECT pg_database_size(current_database())")[0][0]
    finally:
        engine.dispose()
    return {"events_heap_bytes": int(heap), "events_indexes_bytes": int(indexes), "leaf_relations": partitions,
            "hot_relation": hot, "hot_rows_estimate": hot_rows, "hot_heap_bytes": hot_heap,
            "hot_indexes_bytes": sum(hot_indexes.values()), "hot_indexes": hot_indexes,
            "other_indexes_bytes": other, "database_bytes": database}


# --- Removing the oldest month ---------------------------------------------------------------------


def remove_month(url: str, interval: str | None, lay: dict, index_density: bool) -> dict:
    """Time the removal of the oldest loaded month, and what it leaves behind."""
    from sqlalchemy import text

    since, until = lay["oldest_month"]
    engine = engine_for(url, isolation_level="AUTOCOMMIT")
    report = {"month": since.strftime("%Y-%m")}
    try:
        with engine.connect() as connection:
            connection.execute(text("CREATE EXTENSION IF NOT EXISTS pgstattuple"))

            def leaf_stats() -> dict:
                connection.execute(text("SELECT pg_stat_force_next_flush()"))
                time.sleep(1.2)
                connection.execute(text("SELECT pg_stat_clear_snapshot()"))
                row = connection.execute(text(f"""
                    SELECT coalesce(sum(n_live_tup), 0), coalesce(sum(n_dead_tup), 0),
                           coalesce(sum(pg_table_size(relid)), 0), coalesce(sum(pg_indexes_size(relid)), 0), count(*)
                    FROM pg_stat_user_tables WHERE relid IN {LEAVES}""")).one()
                return {"live_tuples": int(row[0]), "dead_tuples": int(row[1]), "heap_bytes": int(row[2]),
                        "indexes_bytes": int(row[3]), "leaf_relations": int(row[4])}

            wal = connection.execute(text("SELECT pg_current_wal_lsn()")).scalar()
            report["before"] = leaf_stats()
            if interval:
                from app.maintenance.windows import window_name

                partition = window_name("events", interval, since)
                rows = connection.execute(text(f"SELECT count(*) FROM {partition}")).scalar()
                started = time.perf_counter()
                connection.execute(text(f"ALTER TABLE events DETACH PARTITION {partition}"))
                detach = time.perf_counter() - started
                started = time.perf_counter()
                connection.execute(text(f"DROP TABLE {partition}"))
                drop = time.perf_counter() - started
                report.update({"how": f"ALTER TABLE events DETACH PARTITION {partition}; DROP TABLE {partition}",
                               "rows": rows, "detach_s": round(detach, 3), "drop_s": round(drop, 3),
                               "remove_s": round(detach + drop, 3)})
            else:
                started = time.perf_counter()
                rows = connection.execute(text("DELETE FROM events WHERE timestamp >= :since AND timestamp < :until"),
                                          {"since": since, "until": until}).rowcount
                delete = time.perf_counter() - started
                report.update({"how": "DELETE FROM events WHERE timestamp >= <month> AND timestamp < <next month>",
                               "rows": rows, "delete_s": round(delete, 3), "remove_s": round(delete, 3)})
            report["wal_bytes"] = int(connection.execute(
                text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), :wal)"), {"wal": wal}).scalar())
            report["after"] = leaf_stats()
            if not interval:
                started = time.perf_counter()
                connection.execute(text("VACUUM events"))
                report["vacuum_s"] = round(time.perf_counter() - started, 1)
                report["after_vacuum"] = leaf_stats()
            report["heap_after"] = heap_bloat(connection, interval)
            if index_density:
                report["index_leaf_density"] = index_bloat(connection, interval)
    finally:
        engine.dispose()
    return report


def heap_bloat(connection, interval: str | None) -> dict:
    """pgstattuple_approx over every leaf of events: free space and dead tuples in the heap."""
    from sqlalchemy import text

    row = connection.execute(text(f"""
        SELECT sum(s.table_len), sum(s.approx_free_space), sum(s.dead_tuple_len), sum(s.approx_tuple_len)
        FROM {LEAVES} AS l(relid),
             LATERAL pgstattuple_approx(l.relid) AS s""")).one()
    table_len, free, dead, live = (int(v or 0) for v in row)
    return {"table_bytes": table_len, "free_bytes": free, "dead_bytes": dead, "live_bytes": live,
            "free_percent": round(100 * free / table_len, 1) if table_len else 0.0}


def index_bloat(connection, interval: str | None) -> dict:
    """pgstatindex's average leaf density of each index of events (summed over the partitions)."""
    from sqlalchemy import text

    indexes = connection.execute(text(f"""
        SELECT i.indexrelid, coalesce(parent.relname, c.relname)
        FROM {LEAVES} AS l(relid)
        JOIN pg_index i ON i.indrelid = l.relid
        JOIN pg_class c ON c.oid = i.indexrelid
        LEFT JOIN pg_inherits h ON h.inhrelid = i.indexrelid
        LEFT JOIN pg_class parent ON parent.oid = h.inhparent""")).all()
    totals: dict[str, list[float]] = {}
    for oid, name in indexes:
        leaves, density, size = connection.execute(text(
            "SELECT leaf_pages, avg_leaf_density, index_size FROM pgstatindex(CAST(:oid AS oid)::regclass)"),
            {"oid": oid}).one()
        entry = totals.setdefault(name, [0, 0.0, 0])
        entry[0] += leaves
        entry[1] += float(density if density == density else 0) * leaves  # NaN for an empty index
        entry[2] += size
    return {name: {"leaf_pages": int(leaves), "avg_leaf_density": round(weighted / leaves, 1) if leaves else None,
                   "bytes": int(size)} for name, (leaves, weighted, size) in sorted(totals.items())}


# --- Orchestration --------------------------------------------------------------------------------


def store_spec(variant: str, seconds: float, warmup: float, lay: dict, seed: str, fresh: bool = False) -> dict:
    return {"task": "store", "variant": variant, "seconds": seconds, "warmup": warmup, "seed": seed,
            "clock": (lay["fresh"] if fresh else lay["now"]).isoformat()}


def store_rounds(main: Inner, reference: Inner | None, lay: dict, args, variant: str, seed: int,
                 fresh: bool = False) -> dict:
    """--rounds alternated rounds on the measured database (and the empty reference)."""
    per_round = args.store_seconds / args.rounds
    runs = {"main": [], "reference": []}
    for number in range(args.rounds):
        order = [("main", main), ("reference", reference)]
        if number % 2:
            order.reverse()
        for role, inner in order:
            if inner is None:
                continue
            # A seed of its own per figure: its sessions and event ids never meet those of another one.
            spec = store_spec(variant, per_round, args.warmup, lay, f"{seed}-{variant}-{fresh}-{number}", fresh)
            runs[role].append(inner(spec)["store"])
    report = {}
    for role, results in runs.items():
        if not results:
            continue
        events, busy = sum(r["events"] for r in results), sum(r["seconds"] for r in results)
        report[role] = {"events_per_s": round(events / busy), "events": events, "seconds": round(busy, 2),
                        "rounds_events_per_s": [r["events_per_s"] for r in results],
                        "ms_per_message_p50": statistics.median(r["ms_per_message_p50"] for r in results),
                        "events_per_message": round(events / sum(r["messages"] for r in results), 1),
                        "cpu_us_per_event": _cpu(results)}
    if "reference" in report:
        report["vs_reference"] = round(report["main"]["events_per_s"] / report["reference"]["events_per_s"], 3)
    return report


def _cpu(results: list[dict]) -> dict:
    events = sum(r["events"] for r in results)
    out = {"python": round(1e6 * sum(r["cpu_python_s"] for r in results) / events, 1)}
    if all(r.get("cpu_postgres_s") is not None for r in results):
        out["postgres"] = round(1e6 * sum(r["cpu_postgres_s"] for r in results) / events, 1)
    return out


def measure_size(main: Inner, reference: Inner | None, interval: str | None, lay: dict, args, size: int,
                 fresh: bool, span: tuple[datetime, datetime], seed: int) -> dict:
    result = {"size": size}
    print(f"  store rate (mixed, pageviews; {args.rounds} rounds of {args.store_seconds / args.rounds:g} s, "
          f"alternated with the empty reference)", flush=True)
    result["store"] = {variant: store_rounds(main, reference, lay, args, variant, seed)
                       for variant in ("mixed", "pageviews")}
    if fresh and interval:
        print("  store rate in a fresh, empty month's partition", flush=True)
        result["store_fresh_month"] = {variant: store_rounds(main, reference, lay, args, variant, seed + 7, fresh=True)
                                       for variant in ("mixed", "pageviews")}
    result["sizes"] = sizes(main.url, interval, lay)
    if size > 0:
        print("  queries (test client) and plans", flush=True)
        spec = {"task": "read", "sessions": size // EVENTS_PER_SESSION, "start": span[0].isoformat(),
                "span_days": (span[1] - span[0]).days, "runs": args.runs, "walks": args.walks,
                "plan_repeats": args.plan_repeats, "seed": seed}
        result.update(main(spec))
    return result


class SchemaRun:
    """One schema's measured database and its empty reference, each with its inner process."""

    def __init__(self, schema: str, tree: Path, revision: str, interval: str | None, dbs: Databases):
        self.schema, self.tree, self.revision, self.interval = schema, tree, revision, interval
        self.url, self.ref_url = dbs.create(schema), dbs.create(f"{schema}_ref")
        self.main = self.reference = None
        self.out = {"schema": schema, "tree": str(tree), "revision": revision, "interval": interval, "steps": []}

    def start(self, lay: dict) -> None:
        self.main = Inner(self.tree, self.url, self.interval or "month")
        self.reference = Inner(self.tree, self.ref_url, self.interval or "month")
        self.setup = prepare(self.main, self.revision, self.interval, lay, lay["start"])
        prepare(self.reference, self.revision, self.interval, lay, lay["start"])
        self.out["partitions_made"] = self.setup["partitions_made"]

    def close(self) -> None:
        for inner in (self.main, self.reference):
            if inner:
                inner.close()


def growth(schemas: list[tuple[str, Path, str, str | None]], dbs: Databases, lay: dict, args) -> list[dict]:
    """Every schema grown through --sizes together: loaded side by side (nothing is measured meanwhile),
    then measured one after the other at each size, in alternating order."""
    runs: list[SchemaRun] = []
    try:
        for schema, tree, revision, interval in schemas:
            print(f"\n== {schema} ({tree}, revision {revision}"
                  f"{', ' + interval + ' partitions' if interval else ''})", flush=True)
            runs.append(SchemaRun(schema, tree, revision, interval, dbs))
            runs[-1].start(lay)
        loaded = 0
        largest = max(args.sizes)
        for step, size in enumerate(args.sizes):
            loads = {}
            if size > loaded:
                print(f"\n-- loading {loaded:,} → {size:,} events into "
                      f"{' and '.join(r.schema for r in runs)}{' side by side' if args.parallel_load else ''}",
                      flush=True)
                started = time.perf_counter()
                with ThreadPoolExecutor(max_workers=len(runs) if args.parallel_load else 1) as pool:
                    futures = {run.schema: pool.submit(load, run.url, loaded, size, lay, lay["start"], lay["end"],
                                                       run.setup["applications"][0], run.schema) for run in runs}
                    loads = {schema: future.result() for schema, future in futures.items()}
                wall = round(time.perf_counter() - started, 1)
                for report in loads.values():
                    report["wall_s_all_schemas"] = wall
                loaded = size
            for run in (runs if step % 2 == 0 else runs[::-1]):
                print(f"-- {run.schema}: {size:,} events", flush=True)
                measured = measure_size(run.main, run.reference, run.interval, lay, args, size,
                                        fresh=size == largest, span=(lay["start"], lay["end"]), seed=args.seed + step)
                measured["load"] = loads.get(run.schema)
                run.out["steps"].append(measured)
                print_step(run.schema, measured)
        for run in runs:
            run.close()
            if not args.skip_removal:
                print(f"-- {run.schema}: removing the oldest month ({lay['oldest_month'][0]:%Y-%m})", flush=True)
                run.out["removal"] = remove_month(run.url, run.interval, lay, args.index_density)
                print(f"  removed {run.out['removal']['rows']:,} rows in {run.out['removal']['remove_s']} s",
                      flush=True)
            dbs.drop(run.url)
            dbs.drop(run.ref_url)
    finally:
        for run in runs:
            run.close()
            dbs.drop(run.url)
            dbs.drop(run.ref_url)
    return [run.out for run in runs]


def interval_study(interval: str, dbs: Databases, lay: dict, args) -> dict:
    print(f"\n== interval study: {interval} partitions over {args.retention_days} days, "
          f"{args.interval_events:,} events", flush=True)
    url = dbs.create(f"interval_{interval}")
    inner = None
    try:
        inner = Inner(ROOT, url, interval)
        started = time.perf_counter()
        setup = prepare(inner, "head", interval, lay, lay["interval_start"])
        prepare_s = round(time.perf_counter() - started, 1)
        load_report = load(url, 0, args.interval_events, lay, lay["interval_start"], lay["end"],
                           setup["applications"][0])
        out = {"interval": interval, "prepare_s": prepare_s, "load": load_report}
        print("  store rate", flush=True)
        args_store = argparse.Namespace(**{**vars(args), "rounds": 1, "store_seconds": args.interval_store_seconds})
        out["store"] = {variant: store_rounds(inner, None, lay, args_store, variant, args.seed)
                        for variant in ("mixed", "pageviews")}
        out["sizes"] = sizes(url, interval, lay)
        print("  queries and plans", flush=True)
        spec = {"task": "read", "sessions": args.interval_events // EVENTS_PER_SESSION,
                "start": lay["interval_start"].isoformat(), "span_days": args.retention_days,
                "runs": args.interval_runs, "walks": 0, "plan_repeats": args.plan_repeats, "seed": args.seed,
                "lock_count": True}
        out.update(inner(spec))
        print_interval(out)
        return out
    finally:
        if inner:
            inner.close()
        dbs.drop(url)


# --- The inner process: one tree's code on one database -------------------------------------------


def serve(tree: str) -> int:
    """The inner process: answer requests (JSON lines on stdin) with this tree's app, one at a time."""
    import traceback

    answers = os.fdopen(os.dup(1), "w", buffering=1)
    sys.stdout = sys.stderr  # whatever else is printed goes to the log
    import app as app_package

    if not Path(app_package.__file__).resolve().is_relative_to(Path(tree).resolve()):
        answers.write("@@ " + json.dumps({"error": f"app imported from {app_package.__file__}, not {tree}"}) + "\n")
        return 1
    from app import create_app
    from app.extensions import db

    app = create_app()
    with app.app_context():
        for line in sys.stdin:
            spec = json.loads(line)
            try:
                out = {"code": str(Path(app_package.__file__).resolve().parent)}
                if spec["task"] == "migrate":
                    from flask_migrate import upgrade

                    upgrade(directory=app.extensions["migrate"].directory, revision=spec["revision"])
                elif spec["task"] == "store":
                    out["store"] = inner_store(spec)
                elif spec["task"] == "read":
                    out.update(inner_read(app, spec))
            except BaseException:
                db.session.rollback()
                out = {"error": traceback.format_exc()}
            finally:
                db.session.remove()
            answers.write("@@ " + json.dumps(out, default=str) + "\n")
        db.engine.dispose()
    return 0


def _backend_cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def inner_store(spec: dict) -> dict:
    """Call store_message on generated messages for spec["seconds"] (after an untimed warm-up)."""
    from ingest import make_event  # bench/ingest.py: the events its load generator sends
    from sqlalchemy import text

    from app.extensions import db
    from app.storage.message import store_message

    rng = random.Random(spec["seed"])
    random.seed(spec["seed"])
    kinds = MIXED if spec["variant"] == "mixed" else PAGEVIEWS
    apps = db.session.execute(text("SELECT id FROM applications WHERE name = ANY(:n) ORDER BY id"),
                              {"n": list(qb.APPLICATIONS)}).scalars().all()
    clock0 = datetime.fromisoformat(spec["clock"]).timestamp()
    sessions = [{"id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "app": apps[i % len(apps)],
                 "clock": clock0 + rng.uniform(0, 300)} for i in range(LIVE_SESSIONS)]

    def message() -> tuple[dict, int]:
        parts, count = [], 0
        for _ in range(rng.randint(2, 8)):
            session = rng.choice(sessions)
            events = []
            for _ in range(rng.randint(1, 10)):
                session["clock"] += rng.uniform(0.25, 2.0)
                event = make_event(rng.choice(kinds), session["id"], session["clock"])
                event["event_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                events.append(event)
            received = datetime.fromtimestamp(session["clock"] + rng.uniform(0.05, 0.5), UTC)
            parts.append({"application_id": session["app"], "received_at": received.isoformat(),
                          "events": events, "rejections": []})
            count += len(events)
        return {"v": 1, "parts": parts}, count

    def run(seconds: float) -> dict:
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        db.session.commit()
        cpu_pg, cpu_py = _backend_cpu_seconds(pid), time.process_time()
        events = messages = 0
        busy, latencies = 0.0, []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            msg, count = message()
            started = time.perf_counter()
            batch = store_message(msg)
            elapsed = time.perf_counter() - started
            if len(batch.new_events) != count:
                raise SystemExit(f"stored {len(batch.new_events)} of {count} new events")
            busy += elapsed
            latencies.append(elapsed * 1000)
            events += count
            messages += 1
        same = db.session.execute(text("SELECT pg_backend_pid()")).scalar() == pid
        db.session.commit()
        cpu_pg_end = _backend_cpu_seconds(pid)
        return {"events": events, "messages": messages, "seconds": busy, "events_per_s": round(events / busy),
                "ms_per_message_p50": round(statistics.median(latencies), 2),
                "ms_per_message_p95": round(qb.percentile(latencies, 0.95), 2),
                "cpu_python_s": time.process_time() - cpu_py,
                "cpu_postgres_s": (cpu_pg_end - cpu_pg) if same and cpu_pg is not None and cpu_pg_end else None}

    if spec["warmup"] > 0:
        run(spec["warmup"])
    return run(spec["seconds"])


def inner_read(app, spec: dict) -> dict:
    """The read API through the test client (bench/queries.py's measure) and EXPLAIN ANALYZE of its statements."""
    from app.extensions import db
    from app.identity import keys

    qb.START = datetime.fromisoformat(spec["start"])
    qb.SPAN_DAYS = spec["span_days"]
    out = {}
    if spec["runs"] > 0:
        keys.get_or_create_application("bench-reader")
        key = keys.create_key("bench-reader", ["read"]).key
        db.session.commit()
        load_before = os.getloadavg()[0]
        walks = spec["walks"]
        out["queries"] = measure_queries(app, key, spec["sessions"], spec["runs"], walks, random.Random(spec["seed"]))
        out["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    out["plans"] = plans(spec)
    return out


def measure_queries(app, key, sessions, runs, walks, rng) -> dict:
    """bench/queries.py's measure; with walks=0 only its three single-page queries are kept."""
    # Without the volume figures: the trees compared include ones from before GET /api/v1/stats/volume.
    result = qb.measure(app, key, sessions, runs, max(walks, 1), rng, volume=False)
    if walks == 0:
        result.pop("walk", None)
        result.pop("walk_page", None)
    return result


def plans(spec: dict) -> dict:
    """Median planning and execution time of each read statement (EXPLAIN ANALYZE, plan_repeats runs)."""
    from sqlalchemy.ext.compiler import compiles
    from sqlalchemy.sql.expression import ClauseElement, Executable

    import app.queries.events as event_queries
    from app.extensions import db
    from app.queries.events import EventFilters, events_query

    class ExplainAnalyze(Executable, ClauseElement):
        inherit_cache = False

        def __init__(self, statement):
            self.statement = statement

    @compiles(ExplainAnalyze, "postgresql")
    def _explain(element, compiler, **kw):
        return "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + compiler.process(element.statement, **kw)

    within = getattr(event_queries, "within_session_span", None)
    rng = random.Random(spec["seed"] + 1)
    start, span_hours = datetime.fromisoformat(spec["start"]), spec["span_days"] * 24

    def hour() -> dict:
        since = start + timedelta(hours=rng.randrange(1, span_hours - 1))
        return {"since": since, "until": since + timedelta(hours=1)}

    def filters(case: str) -> EventFilters:
        if case == "session":
            chosen = EventFilters(session_id=qb.session_uuid(rng.randrange(spec["sessions"])))
            return within(chosen) if within else chosen
        if case == "category_1h":
            return EventFilters(category="page interaction", **hour())
        if case == "type_1h":
            return EventFilters(category="page interaction", name="pageview", **hour())
        return EventFilters(category="page interaction")

    report = {}
    for case in PLAN_CASES:
        planning, execution, relations, rows, buffers, sample = [], [], set(), [], [], None
        for number in range(spec["plan_repeats"] + 2):
            plan = db.session.execute(ExplainAnalyze(events_query(filters(case), 101))).scalar()[0]
            db.session.commit()
            if number < 2:  # the first two warm the backend's caches
                continue
            planning.append(plan["Planning Time"])
            execution.append(plan["Execution Time"])
            scanned = _relations(plan["Plan"])
            relations.add(len(scanned))
            rows.append(plan["Plan"].get("Actual Rows", 0))
            buffers.append(plan["Plan"].get("Shared Hit Blocks", 0) + plan["Plan"].get("Shared Read Blocks", 0))
            sample = sample or _outline(plan["Plan"])
        report[case] = {"planning_ms_p50": round(statistics.median(planning), 3),
                        "execution_ms_p50": round(statistics.median(execution), 3),
                        "planning_ms_max": round(max(planning), 3), "execution_ms_max": round(max(execution), 3),
                        "relations_scanned": sorted(relations), "rows": round(statistics.mean(rows), 1),
                        "buffers_p50": statistics.median(buffers), "plan": sample}
    if spec.get("lock_count"):
        report["locks_category_unbounded"] = _locks_held(db, events_query(filters("category_unbounded"), 101))
    return report


def _relations(node: dict) -> list[str]:
    found = [node["Relation Name"]] if "Relation Name" in node else []
    for child in node.get("Plans", []):
        found += _relations(child)
    return found


def _outline(node: dict, depth: int = 0, lines: list | None = None) -> list[str]:
    """The plan's node types and relations (at most 12 lines: enough to see its shape)."""
    lines = [] if lines is None else lines
    if len(lines) < 12:
        what = node["Node Type"] + (f" on {node['Relation Name']}" if "Relation Name" in node else "")
        what += f" using {node['Index Name']}" if "Index Name" in node else ""
        if "Subplans Removed" in node:
            what += f" (subplans removed: {node['Subplans Removed']})"
        lines.append("  " * depth + what)
        for child in node.get("Plans", []):
            _outline(child, depth + 1, lines)
    return lines


def _locks_held(db, statement) -> int:
    """Locks one reader's transaction holds after running `statement` (relations and their indexes)."""
    from sqlalchemy import text

    db.session.execute(statement).all()
    count = db.session.execute(text(
        "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation'")).scalar()
    db.session.rollback()
    return int(count)


# --- Report ---------------------------------------------------------------------------------------


def mb(size: int | None) -> str:
    return "—" if size is None else f"{size / 1024 / 1024:,.0f}"


def print_step(schema: str, step: dict) -> None:
    store = step["store"]
    line = (f"  {schema} {step['size']:,}: mixed {store['mixed']['main']['events_per_s']:,}/s "
            f"(reference {store['mixed'].get('reference', {}).get('events_per_s', '—')}), pageviews "
            f"{store['pageviews']['main']['events_per_s']:,}/s (reference "
            f"{store['pageviews'].get('reference', {}).get('events_per_s', '—')}); hot indexes "
            f"{mb(step['sizes']['hot_indexes_bytes'])} MB of {mb(step['sizes']['events_indexes_bytes'])} MB")
    print(line, flush=True)
    if "queries" in step:
        q = step["queries"]
        print("  p95 ms: " + ", ".join(f"{name} {q[name]['p95_ms']}" for name in q), flush=True)


def print_interval(out: dict) -> None:
    plans_ = out["plans"]
    print(f"  {out['interval']}: {out['sizes']['leaf_relations']} partitions; store mixed "
          f"{out['store']['mixed']['main']['events_per_s']:,}/s, pageviews "
          f"{out['store']['pageviews']['main']['events_per_s']:,}/s; planning/execution ms: "
          + ", ".join(f"{c} {plans_[c]['planning_ms_p50']}/{plans_[c]['execution_ms_p50']}" for c in PLAN_CASES),
          flush=True)


def print_report(report: dict) -> None:
    print(f"\nGrowth — {report['machine']['nproc']} CPUs, {report['machine']['ram_gib']} GiB, PostgreSQL "
          f"{report['machine']['postgresql']} (shared_buffers {report['machine']['shared_buffers']}); "
          f"run {report['run_minutes']} min")
    print(f"{'schema':<14}{'events':>12}{'mixed/s':>9}{'vs 0':>7}{'vs ref':>8}{'pv/s':>8}{'vs 0':>7}{'vs ref':>8}"
          f"{'sess p95':>10}{'cat p95':>9}{'hot idx MB':>12}{'all idx MB':>12}")
    for schema in report["growth"]:
        base = schema["steps"][0]["store"]
        for step in schema["steps"]:
            s, q = step["store"], step.get("queries", {})

            def ratio(variant: str, s=s, base=base) -> str:
                return f"{s[variant]['main']['events_per_s'] / base[variant]['main']['events_per_s']:.2f}"
            print(f"{schema['schema']:<14}{step['size']:>12,}{s['mixed']['main']['events_per_s']:>9,}"
                  f"{ratio('mixed'):>7}{s['mixed'].get('vs_reference', '—'):>8}"
                  f"{s['pageviews']['main']['events_per_s']:>8,}{ratio('pageviews'):>7}"
                  f"{s['pageviews'].get('vs_reference', '—'):>8}"
                  f"{q.get('session', {}).get('p95_ms', '—'):>10}{q.get('category', {}).get('p95_ms', '—'):>9}"
                  f"{mb(step['sizes']['hot_indexes_bytes']):>12}{mb(step['sizes']['events_indexes_bytes']):>12}")
        if "removal" in schema:
            r = schema["removal"]
            after = r.get("after_vacuum", r["after"])
            print(f"  remove {r['month']}: {r['rows']:,} rows in {r['remove_s']} s"
                  + (f" (+ VACUUM {r['vacuum_s']} s)" if "vacuum_s" in r else "")
                  + f"; dead tuples after {r['after']['dead_tuples']:,}; heap {mb(r['before']['heap_bytes'])} → "
                  f"{mb(after['heap_bytes'])} MB, indexes {mb(r['before']['indexes_bytes'])} → "
                  f"{mb(after['indexes_bytes'])} MB; heap free {r['heap_after']['free_percent']} %")
    if report.get("intervals"):
        print(f"\n{'interval':<9}{'parts':>6}{'mixed/s':>9}{'pv/s':>8}" + "".join(f"{c:>24}" for c in PLAN_CASES))
        for out in report["intervals"]:
            p = out["plans"]
            print(f"{out['interval']:<9}{out['sizes']['leaf_relations']:>6}"
                  f"{out['store']['mixed']['main']['events_per_s']:>9,}{out['store']['pageviews']['main']['events_per_s']:>8,}"
                  + "".join(f"{str(p[c]['planning_ms_p50']) + ' / ' + str(p[c]['execution_ms_p50']):>24}"
                            for c in PLAN_CASES))
        print("(plans: planning / execution ms, p50 of EXPLAIN ANALYZE)")


# --- Main -----------------------------------------------------------------------------------------


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        return serve(sys.argv[2])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0,10000000,30000000", help="event counts, in order (multiples of 40)")
    parser.add_argument("--schemas", default="unpartitioned,partitioned")
    parser.add_argument("--admin-url", default=os.environ.get("EYE_BENCH_ADMIN_URL",
                                                              "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--base-ref", help="the commit whose code is the unpartitioned schema's "
                                           "(default: the one before migration 0003 was added)")
    parser.add_argument("--base-tree", type=Path, default=Path("/tmp/growth-base"))
    parser.add_argument("--interval", default="month", help="the partitioned schema's interval in the growth runs")
    parser.add_argument("--store-seconds", type=float, default=20, help="timed store per figure (all rounds)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=2, help="untimed store before each round")
    parser.add_argument("--runs", type=int, default=300, help="timed calls per single-page query")
    parser.add_argument("--walks", type=int, default=10)
    parser.add_argument("--plan-repeats", type=int, default=15)
    parser.add_argument("--skip-removal", action="store_true")
    parser.add_argument("--one-load-at-a-time", dest="parallel_load", action="store_false",
                        help="load the schemas one after the other (less disk I/O at once, longer)")
    parser.add_argument("--no-index-density", dest="index_density", action="store_false",
                        help="skip pgstatindex of every index after the removal (reads them all)")
    parser.add_argument("--intervals", default="day,week,month", help="the interval study ('' to skip)")
    parser.add_argument("--interval-events", type=int, default=1_000_000)
    parser.add_argument("--retention-days", type=int, default=400)
    parser.add_argument("--interval-store-seconds", type=float, default=10)
    parser.add_argument("--interval-runs", type=int, default=200)
    parser.add_argument("--min-free-gb", type=float, default=15, help="refuse to start with less disk left after the load")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the tool runs, measures nothing")
    parser.add_argument("--keep", action="store_true", help="keep the databases (and the worktree)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.store_seconds, args.rounds, args.warmup = "0,2000", 0.3, 1, 0.1
        args.runs, args.walks, args.plan_repeats = 3, 1, 2
        args.interval_events, args.retention_days, args.interval_store_seconds, args.interval_runs = 4000, 40, 0.3, 3
        args.intervals = "day"
    args.sizes = [int(s) for s in args.sizes.split(",")]
    if any(s % EVENTS_PER_SESSION for s in args.sizes) or args.sizes != sorted(args.sizes):
        parser.error("--sizes: increasing multiples of 40")
    schemas = [s for s in args.schemas.split(",") if s]
    intervals = [i for i in args.intervals.split(",") if i]

    # This tree's code for the partitions' windows (the orchestrator never imports the base tree's app).
    sys.path.insert(0, str(ROOT / "src"))
    # ~650 bytes per event loaded (heap + 9 indexes) in each schema's database, with room.
    need_gb = max(args.sizes) * 750 / 1e9 * len(schemas)
    free_gb = shutil.disk_usage("/var/lib/postgresql" if Path("/var/lib/postgresql").exists() else "/").free / 1e9
    print(f"disk: {free_gb:.0f} GB free; the largest database needs about {need_gb:.0f} GB", flush=True)
    if free_gb - need_gb < args.min_free_gb and not args.smoke:
        raise SystemExit(f"not enough disk: {free_gb:.0f} GB free, {need_gb:.0f} GB needed + {args.min_free_gb} GB")

    started = time.perf_counter()
    real_now = datetime.now(UTC)
    lay = layout(real_now, args.retention_days)
    args.base_ref = args.base_ref or default_base_ref()
    made_tree = make_base_tree(args.base_tree, args.base_ref) if "unpartitioned" in schemas else False
    if "unpartitioned" in schemas and (args.base_tree / PARTITIONING_MIGRATION).exists():
        raise SystemExit(f"{args.base_tree} holds {PARTITIONING_MIGRATION}: not the unpartitioned code")
    base_commit = subprocess.run(["git", "-C", str(args.base_tree), "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip() if "unpartitioned" in schemas else None
    dbs = Databases(args.admin_url, args.keep)
    report = {"command": " ".join(["python", "bench/growth.py", *sys.argv[1:]]),
              "started_at": real_now.isoformat(timespec="seconds"),
              "layout": {k: (v.isoformat() if isinstance(v, datetime) else [x.isoformat() for x in v])
                         for k, v in lay.items()},
              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "base_commit": base_commit, "growth": [], "intervals": []}
    try:
        engine = engine_for(args.admin_url)
        report["machine"] = qb.machine(engine)
        engine.dispose()
        report["machine"]["load_average_at_start"] = round(os.getloadavg()[0], 2)
        trees = {"unpartitioned": (args.base_tree, "0002", None), "partitioned": (ROOT, "head", args.interval)}
        report["growth"] = growth([(schema, *trees[schema]) for schema in schemas], dbs, lay, args)
        for interval in intervals:
            report["intervals"].append(interval_study(interval, dbs, lay, args))
    finally:
        dbs.drop_all()
        if made_tree and not args.keep:
            remove_base_tree(args.base_tree)
    report["run_minutes"] = round((time.perf_counter() - started) / 60, 1)
    report["machine"]["load_average_at_end"] = round(os.getloadavg()[0], 2)
    print_report(report)
    path = args.json or ROOT / "bench" / "results" / f"growth-{max(args.sizes)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
