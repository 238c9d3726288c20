"""Seed PostgreSQL with N events, then time the read API's queries through the HTTP test client.

    python bench/queries.py                      # 1,000,000 events in a database of its own
    python bench/queries.py --events 10000000    # 10 M (about 10 minutes on 2 cores)
    python bench/queries.py --database-url postgresql://…/eye --skip-seed   # re-measure a kept one

Without --database-url it creates `eye_bench_<n>_<random>` on --admin-url, builds the schema with the
migrations, loads the events with server-side `INSERT … SELECT generate_series` in chunks (dropping
the events indexes first and building them again afterwards, the fast way to load a fresh table),
and drops the database at the end unless --keep.

The data: N/40 sessions of 40 events each, 5 s apart, starting at times spread evenly over 30 days;
three applications; event types mixed like real traffic (45 % mouse moves, 25 % page views, 10 %
CTA clicks, 5 % form submits, 15 % of two unregistered types); arrival 50–500 ms after the event.

Every query goes through Flask's test client with a read key, so each figure is what a caller
would see minus the network: authentication, parsing, the SQL, and the JSON answer.
  - session:  GET /api/v1/sessions/{id}/events         (a random session: its 40 events)
  - category: GET /api/v1/events?category=page interaction&since=H&until=H+1h   (first page of 100)
  - type:     the same with name=pageview
  - walk:     GET /api/v1/events?since=H&until=H+1h&limit=1000, following next_cursor to the end
  - volume_span: GET /api/v1/stats/volume over the whole 31 days in 1-hour steps (arrival_counts_hourly)
  - volume_day:  GET /api/v1/stats/volume over a random day in 5-minute steps (arrival_counts)
Prints a table; writes JSON (--json, default bench/results/queries-<events>.json).
"""

import argparse
import hashlib
import json
import os
import platform
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2021, 1, 1, tzinfo=UTC)
SPAN_DAYS = 30
EVENTS_PER_SESSION = 40
CHUNK = 500_000
APPLICATIONS = ("bench-web", "bench-mobile", "bench-kiosk")

# (share in %, category, name, payload): the traffic mix.
TYPES = [
    (45, "mouse", "move",
     '{"points": [{"x": 10, "y": 20, "t": 1609459200000}, {"x": 13, "y": 24, "t": 1609459200010},'
     ' {"x": 19, "y": 32, "t": 1609459200020}], "viewport": {"w": 1280, "h": 720}, "tab": "a"}'),
    (25, "page interaction", "pageview", '{"host": "shop.example.com", "path": "/pricing"}'),
    (10, "page interaction", "cta click", '{"host": "shop.example.com", "path": "/", "element": "buy"}'),
    (5, "form interaction", "submit",
     '{"host": "shop.example.com", "path": "/signup", "form": {"email": "a@example.com"}}'),
    (8, "page interaction", "scroll", '{"depth": 0.5}'),
    (7, "video", "play", '{"video": "intro", "position": 0}'),
]


def session_uuid(number: int) -> uuid.UUID:
    """The session id the seed gives session `number` (md5 of its name, as PostgreSQL computes it)."""
    return uuid.UUID(hashlib.md5(f"session-{number}".encode()).hexdigest())


def sql_array(values, cast: str = "") -> str:
    quoted = [str(v) if isinstance(v, int) else "'" + str(v).replace("'", "''") + "'" + cast for v in values]
    return "ARRAY[" + ", ".join(quoted) + "]"


def build_keys(connection, indexes: list, constraints: list) -> None:
    """Build the events' indexes and constraints again after a load (each committed on its own)."""
    for _, definition in indexes:
        # pg_indexes defines a partitioned table's index `ON ONLY` the parent: made so, it would be an
        # invalid index of the parent alone, none on the partitions (the figures would read without it).
        connection.execute(text(definition.replace(" ON ONLY ", " ON ", 1)))
        connection.commit()
    for name, definition in constraints:
        connection.execute(text(f"ALTER TABLE events ADD CONSTRAINT {name} {definition}"))
        connection.commit()


def seed_statement() -> str:
    """One chunk of events, rows :lo to :hi - 1; every value derived from the row number.

    Row i is event i // sessions of session i % sessions. Its type comes from a hash of i: a
    residue of i would give all of a session's events the same type.
    """
    pick = []  # 100 slots: slot r holds the type a row with r = hash(i) % 100 gets
    for number, (share, *_rest) in enumerate(TYPES, start=1):
        pick += [number] * share
    assert len(pick) == 100
    categories = sql_array([t[1] for t in TYPES])
    names = sql_array([t[2] for t in TYPES])
    payloads = sql_array([t[3] for t in TYPES], "::jsonb")
    return f"""
        INSERT INTO events (application_id, event_id, session_id, category, name, data, timestamp, received_at)
        SELECT :first_application + p.s % 3, gen_random_uuid(), md5('session-' || p.s)::uuid,
               ({categories})[p.t], ({names})[p.t], ({payloads})[p.t],
               p.ts, p.ts + (50 + (p.i * 7919) % 450) * interval '1 millisecond'
        FROM (
            SELECT i, s, ({sql_array(pick)})[1 + (hashint8(i) % 100 + 100) % 100] AS t,
                   :start + ((hashtextextended('session-' || s, 0) % :span + :span) % :span) * interval '1 second'
                          + (i / :sessions) * interval '5 seconds'
                          + ((i * 40503) % 1000) * interval '1 millisecond' AS ts
            FROM (SELECT i, i % :sessions AS s
                  FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint) - 1) AS i) AS numbered
        ) AS p
    """


def event_index_definitions(connection) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The events table's secondary indexes and unique constraints (name, definition), as migrated."""
    constraints = connection.execute(text(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'events'::regclass AND contype = 'u'")).all()
    indexes = connection.execute(text(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'events' AND indexname NOT IN "
        "(SELECT conname FROM pg_constraint WHERE conrelid = 'events'::regclass)")).all()
    return [tuple(i) for i in indexes], [tuple(c) for c in constraints]


def seed(engine, events: int, fast_load: bool) -> dict:
    sessions = max(1, events // EVENTS_PER_SESSION)
    timings = {}
    with engine.connect() as connection:
        connection.execute(text("SET maintenance_work_mem = '1GB'"))
        connection.execute(text("SET work_mem = '256MB'"))
        for name in APPLICATIONS:
            connection.execute(text("INSERT INTO applications (name) VALUES (:n) ON CONFLICT DO NOTHING"),
                               {"n": name})
        first_application = connection.scalar(text("SELECT min(id) FROM applications WHERE name = ANY(:n)"),
                                              {"n": list(APPLICATIONS)})
        ids = connection.execute(text("SELECT id FROM applications WHERE name = ANY(:n) ORDER BY id"),
                                 {"n": list(APPLICATIONS)}).scalars().all()
        assert ids == list(range(first_application, first_application + 3)), "bench applications not contiguous"
        connection.commit()

        indexes, constraints = event_index_definitions(connection) if fast_load else ([], [])
        for name, _ in constraints:
            connection.execute(text(f"ALTER TABLE events DROP CONSTRAINT {name}"))
        for name, _ in indexes:
            connection.execute(text(f"DROP INDEX {name}"))
        connection.commit()

        started = time.perf_counter()
        statement = text(seed_statement())
        for lo in range(0, events, CHUNK):
            hi = min(events, lo + CHUNK)
            connection.execute(statement, {"lo": lo, "hi": hi, "sessions": sessions, "start": START,
                                           "span": SPAN_DAYS * 86400, "first_application": first_application})
            connection.commit()
            print(f"  seeded {hi:>11,} / {events:,} events ({time.perf_counter() - started:.0f} s)", flush=True)
        timings["insert_s"] = round(time.perf_counter() - started, 1)

        started = time.perf_counter()
        build_keys(connection, indexes, constraints)
        timings["indexes_s"] = round(time.perf_counter() - started, 1)
        print(f"  indexes built ({timings['indexes_s']} s)", flush=True)

        started = time.perf_counter()
        # The sessions the worker would have upserted, so /sessions/{id}/events finds them.
        connection.execute(text("""
            INSERT INTO sessions (session_id, first_event_at, last_event_at, event_count)
            SELECT session_id, min(timestamp), max(timestamp), count(*) FROM events
            WHERE application_id = ANY(:ids) GROUP BY session_id
            ON CONFLICT (session_id) DO NOTHING"""), {"ids": ids})
        connection.execute(text("""
            INSERT INTO session_applications (session_id, application_id)
            SELECT DISTINCT session_id, application_id FROM events WHERE application_id = ANY(:ids)
            ON CONFLICT DO NOTHING"""), {"ids": ids})
        # The arrival counts the workers keep in the same transaction (GET /api/v1/stats/volume): the
        # minute rows, and the hour rows summed from the same minute rows, as COUNT_ARRIVALS does.
        connection.execute(text("""
            WITH arrived AS (
                SELECT date_trunc('minute', received_at) AS minute, 'stored' AS outcome, category, name,
                       count(*) AS count
                FROM events WHERE application_id = ANY(:ids) GROUP BY 1, 3, 4),
            minutes AS (
                INSERT INTO arrival_counts (minute, outcome, category, name, count)
                SELECT minute, outcome, category, name, count FROM arrived
                ON CONFLICT (minute, outcome, category, name) DO UPDATE SET count = arrival_counts.count + EXCLUDED.count)
            INSERT INTO arrival_counts_hourly (hour, outcome, category, name, count)
            SELECT date_trunc('hour', minute, 'UTC'), outcome, category, name, sum(count) FROM arrived
            GROUP BY 1, 2, 3, 4
            ON CONFLICT (hour, outcome, category, name) DO UPDATE SET count = arrival_counts_hourly.count + EXCLUDED.count
            """), {"ids": ids})
        connection.commit()
        timings["sessions_s"] = round(time.perf_counter() - started, 1)

        started = time.perf_counter()
        # As a long-running database would be: statistics gathered, visibility map and hint bits set.
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        timings["vacuum_analyze_s"] = round(time.perf_counter() - started, 1)
        print(f"  sessions, VACUUM ANALYZE done ({timings['sessions_s'] + timings['vacuum_analyze_s']:.0f} s)",
              flush=True)
    return {"sessions": sessions, **timings}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def summary(times_ms: list[float], rows: list[int]) -> dict:
    return {"runs": len(times_ms), "p50_ms": round(statistics.median(times_ms), 2),
            "p95_ms": round(percentile(times_ms, 0.95), 2), "max_ms": round(max(times_ms), 2),
            "mean_rows": round(statistics.mean(rows), 1)}


def measure(app, key: str, sessions: int, runs: int, walks: int, rng: random.Random, volume: bool = True) -> dict:
    """The read API's latencies; `volume=False` leaves out GET /api/v1/stats/volume (older trees lack it)."""
    client = app.test_client()
    headers = {"X-API-Key": key}
    span_hours = SPAN_DAYS * 24

    def get(path: str, **params):
        started = time.perf_counter()
        response = client.get(path, query_string=params, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise SystemExit(f"{path} {params} answered {response.status_code}: {response.get_data(as_text=True)}")
        return elapsed, response.json

    def hour() -> dict:
        since = START + timedelta(hours=rng.randrange(1, span_hours - 1))
        return {"since": since.isoformat(), "until": (since + timedelta(hours=1)).isoformat()}

    def whole_span() -> dict:  # every seeded event arrived in it (the console's widest chart)
        return {"since": START.isoformat(), "until": (START + timedelta(days=SPAN_DAYS + 1)).isoformat(),
                "step": "1h" if SPAN_DAYS < 60 else "1d"}

    def one_day() -> dict:  # the console's default: a day in 5-minute steps
        since = START + timedelta(hours=rng.randrange(0, span_hours - 24))
        return {"since": since.isoformat(), "until": (since + timedelta(hours=24)).isoformat(), "step": "5m"}

    cases = {
        "volume_span": lambda: get("/api/v1/stats/volume", **whole_span()),
        "volume_day": lambda: get("/api/v1/stats/volume", **one_day()),
        "session": lambda: get(f"/api/v1/sessions/{session_uuid(rng.randrange(sessions))}/events"),
        "category": lambda: get("/api/v1/events", category="page interaction", **hour()),
        "type": lambda: get("/api/v1/events", category="page interaction", name="pageview", **hour()),
    }
    if not volume:
        del cases["volume_span"], cases["volume_day"]
    results = {}
    for name, call in cases.items():
        for _ in range(min(20, runs)):  # warm the connection pool and the caches
            call()
        times, rows = [], []
        for _ in range(runs):
            elapsed, body = call()
            times.append(elapsed)
            rows.append(len(body["items"]) if "items" in body else sum(series["total"] for series in body["stored"]))
        results[name] = summary(times, rows)

    walk_times, page_times, page_rows, walk_rows, pages = [], [], [], [], []
    for number in range(walks + 3):
        warming = number < 3  # the first walks only warm up
        window, cursor, total, count, started = hour(), None, 0, 0, time.perf_counter()
        while True:
            elapsed, body = get("/api/v1/events", limit=1000, **window, **({"cursor": cursor} if cursor else {}))
            if not warming:
                page_times.append(elapsed)
                page_rows.append(len(body["items"]))
            total += len(body["items"])
            count += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
        if not warming:
            walk_times.append((time.perf_counter() - started) * 1000)
            walk_rows.append(total)
            pages.append(count)
    results["walk"] = {**summary(walk_times, walk_rows), "mean_pages": round(statistics.mean(pages), 1)}
    results["walk_page"] = summary(page_times, page_rows)
    return results


def machine(engine) -> dict:
    with engine.connect() as connection:
        version = connection.scalar(text("SHOW server_version"))
        shared_buffers = connection.scalar(text("SHOW shared_buffers"))
        size = connection.scalar(text("SELECT pg_size_pretty(pg_database_size(current_database()))"))
    memory_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))
    return {"nproc": os.cpu_count(), "ram_gib": round(memory_kib / 1024 / 1024, 1),
            "cpu": platform.processor() or platform.machine(), "postgresql": version,
            "shared_buffers": shared_buffers, "database_size": size, "python": platform.python_version()}


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def engine_for(url: str, **options):
    return create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1), **options)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="seed and query this database instead of making one")
    parser.add_argument("--admin-url", default=os.environ.get("EYE_BENCH_ADMIN_URL",
                                                              "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--skip-seed", action="store_true", help="the database is already seeded")
    parser.add_argument("--keep", action="store_true", help="keep the database the bench made")
    parser.add_argument("--runs", type=int, default=300, help="timed calls per single-page query")
    parser.add_argument("--walks", type=int, default=20, help="timed walks of one hour")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    admin, made = None, None
    url = args.database_url
    if url is None:
        made = f"eye_bench_{args.events}_{uuid.uuid4().hex[:6]}"
        admin = engine_for(args.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{made}"'))
        url = with_database(args.admin_url, made)
        print(f"database {made}", flush=True)

    os.environ.update({"DATABASE_URL": url, "SECRET_KEY": "bench", "EYE_KEY_CACHE_SECONDS": "60",
                       "EYE_DATA_DIR": str(ROOT / "var" / "bench")})
    # This tree's code, whatever the environment has installed.
    sys.path.insert(0, str(ROOT / "src"))
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db
    from app.identity import keys

    app = create_app()
    engine = engine_for(url)
    report = {"events": args.events, "command": " ".join(["python", "bench/queries.py", *sys.argv[1:]]),
              "measured_through": "Flask test client (in process), read key, JSON answers",
              "started_at": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        with app.app_context():
            upgrade(directory=app.extensions["migrate"].directory)
            if args.skip_seed:
                count = db.session.scalar(text("SELECT count(*) FROM events"))
                report["seed"] = {"sessions": count // EVENTS_PER_SESSION, "skipped": True}
            else:
                print(f"seeding {args.events:,} events", flush=True)
                report["seed"] = seed(engine, args.events, fast_load=made is not None)
            keys.get_or_create_application("bench-reader")
            key = keys.create_key("bench-reader", ["read"]).key
            report["machine"] = machine(engine)
            print("measuring", flush=True)
            # The machine may be shared: the load around the measurement says how far to trust it.
            load_before = os.getloadavg()[0]
            report["queries"] = measure(app, key, report["seed"]["sessions"], args.runs, args.walks,
                                        random.Random(args.seed))
            report["machine"]["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
            db.session.remove()
            db.engine.dispose()
    finally:
        engine.dispose()
        if made and not args.keep:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{made}" WITH (FORCE)'))
        elif made:
            print(f"kept: {url}")

    print_table(report)
    path = args.json or ROOT / "bench" / "results" / f"queries-{args.events}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {path}")
    return 0


def print_table(report: dict) -> None:
    m = report["machine"]
    print(f"\n{report['events']:,} events, {report['seed']['sessions']:,} sessions — {m['nproc']} CPUs, "
          f"{m['ram_gib']} GiB, PostgreSQL {m['postgresql']} (shared_buffers {m['shared_buffers']}), "
          f"database {m['database_size']}; load average {m['load_average_1min']} (before, after)")
    print(f"{'query':<12}{'runs':>6}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}{'rows':>10}")
    for name, r in report["queries"].items():
        print(f"{name:<12}{r['runs']:>6}{r['p50_ms']:>10.2f}{r['p95_ms']:>10.2f}{r['max_ms']:>10.2f}"
              f"{r['mean_rows']:>10.1f}")


if __name__ == "__main__":
    sys.exit(main())
