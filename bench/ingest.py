"""Drive a running Eye over HTTP and check that every accepted event is stored exactly once.

    python bench/ingest.py --url $EYE_URL --api-key $EYE_API_KEY --database-url $DATABASE_URL \
        --mode batch --batch-size 100 --concurrency 8 --duration 30

Reports accepted events/s, ack latency p50/p95/p99 and errors by status, then waits until every
accepted event is in the database and reports the end-to-end rate, the lag and the count check
(accepted == stored, nothing extra). Prints a table and writes JSON (--json, default
bench/results/ingest-<time>.json). Load comes from --processes processes × --concurrency threads,
each with its own keep-alive connection; --rate caps the total events/s (a steady load).

With --steps (% of --capacity) or --step-rates (events/s) it holds constant offered rates instead,
one step after the other, and says which is sustainable: bench/ingest_steps.py.
"""

import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

# The load generator shares the machine with the service: its own JSON should cost it little.
import orjson

PAGES = ["/", "/pricing", "/blog/eye", "/signup", "/docs/api"]


def make_event(kind: str, session_id: str, at: float | None = None) -> dict:
    """One event of `kind`, timestamped `at` (epoch seconds; default now)."""
    at = time.time() if at is None else at
    now = datetime.fromtimestamp(at, UTC).isoformat()
    base = {"event_id": str(uuid.uuid4()), "session_id": session_id, "timestamp": now}
    path = random.choice(PAGES)
    if kind == "pageview":
        return {**base, "category": "page interaction", "name": "pageview",
                "data": {"host": "shop.example.com", "path": path}}
    if kind == "cta":
        return {**base, "category": "page interaction", "name": "cta click",
                "data": {"host": "shop.example.com", "path": path, "element": "buy button"}}
    if kind == "submit":
        return {**base, "category": "form interaction", "name": "submit",
                "data": {"host": "shop.example.com", "path": path, "form": {"email": "a@example.com", "plan": "pro"}}}
    t0 = at * 1000 - 1000
    points = [{"x": 100 + i * 3, "y": 200 + i * 4, "t": t0 + i * 10} for i in range(20)]
    return {**base, "category": "mouse", "name": "move", "data": {"points": points, "tab": "bench"}}


def parse_mix(text: str) -> list[str]:
    """'pageview=5,cta=2,submit=1,mouse=2' → a weighted list to pick from."""
    picks = []
    for part in text.split(","):
        name, _, weight = part.partition("=")
        picks += [name.strip()] * int(weight or 1)
    return picks


def load_worker(args, sessions, deadline, rate_per_thread, results, progress, seed, phase=0.0):
    """One thread's loop: send requests until the deadline; report ids, latencies and statuses.

    With a rate, the thread sends every `interval` seconds, starting `phase` of an interval late, so
    that N threads spread their requests evenly instead of all firing at the same instant (a burst
    of N every interval is not a steady load, and measured its own queueing).
    """
    random.seed(seed)
    parts = urlsplit(args.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
    headers = {"X-API-Key": args.api_key, "Content-Type": "application/json"}
    mix = parse_mix(args.mix)
    accepted, latencies, statuses = [], [], {}
    per_request = args.batch_size if args.mode == "batch" else 1
    interval = per_request / rate_per_thread if rate_per_thread else 0
    next_send = time.monotonic() + phase * interval - interval
    while time.monotonic() < deadline:
        if interval:
            next_send += interval
            delay = next_send - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        events = [make_event(random.choice(mix), random.choice(sessions)) for _ in range(per_request)]
        if args.mode == "batch":
            path, body = "/api/v1/events/batch", orjson.dumps({"events": events})
        else:
            path, body = "/api/v1/events", orjson.dumps(events[0])
        started = time.perf_counter()
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            status = response.status
        # Any failure of one request (reset, refused, a malformed answer) is counted, and the thread
        # goes on: a thread that ended here would never report, and the bench would wait forever.
        except (OSError, http.client.HTTPException) as exc:
            status = f"error:{type(exc).__name__}"
            connection.close()
            connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
            answer = b""
        latencies.append(time.perf_counter() - started)
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status == 202:
            ids = [orjson.loads(answer)["event_id"]] if args.mode == "single" else orjson.loads(answer)["event_ids"]
            accepted += ids
            with progress.get_lock():
                progress.value += len(ids)
    results.put({"accepted": accepted, "latencies": latencies, "statuses": statuses})


def load_process(args, sessions, deadline, rate_per_thread, results, progress, index):
    import threading

    total = args.processes * args.concurrency
    threads = [threading.Thread(target=load_worker, args=(args, sessions, deadline, rate_per_thread, results,
                                                           progress, index * 1000 + i,
                                                           (index * args.concurrency + i) / total))
               for i in range(args.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def merge_reports(collected: list[dict]) -> tuple[list[str], list[float], dict[str, int]]:
    """The load threads' reports as one: accepted event_ids, latencies, and answers by status."""
    accepted = [i for c in collected for i in c["accepted"]]
    latencies = [v for c in collected for v in c["latencies"]]
    statuses: dict[str, int] = {}
    for c in collected:
        for status, n in c["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
    return accepted, latencies, statuses


def count_stored(database_url: str, sessions: list[str]) -> list[str]:
    """The event_ids stored for the bench's sessions."""
    import psycopg2

    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT event_id::text FROM events WHERE session_id = ANY(%s::uuid[])", (sessions,))
        ids = [row[0] for row in cursor.fetchall()]
    connection.close()
    return ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("EYE_URL", "http://127.0.0.1:5000"))
    parser.add_argument("--api-key", default=os.environ.get("EYE_API_KEY"))
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="where to count stored events (default: DATABASE_URL, else make run's embedded server)")
    parser.add_argument("--mode", choices=["single", "batch"], default="single")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, help="threads per process (default 8; steps: 32 connections)")
    parser.add_argument("--processes", type=int, help="load processes (default 1; steps: 2)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load")
    parser.add_argument("--rate", type=float, default=0, help="total events/s to aim at (0: as fast as possible)")
    parser.add_argument("--mix", default="pageview=5,cta=2,submit=1,mouse=2")
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--drain-timeout", type=float, default=300)
    parser.add_argument("--json", dest="json_path")
    steps = parser.add_argument_group("constant-rate steps (bench/README.md, \"Sustainable rate\")")
    steps.add_argument("--steps", help="offered rates as %% of --capacity, e.g. 25,50,75,100,125,150")
    steps.add_argument("--capacity", type=float, help="events/s that --steps are percentages of")
    steps.add_argument("--step-rates", help="offered rates in events/s, e.g. 100,200,300")
    steps.add_argument("--step-seconds", type=float, default=30.0, help="how long each rate is held")
    steps.add_argument("--shape", choices=["single", "batch10", "batch100", "mixed"],
                       help="single events, batches of 10 or 100 (page views, clicks, submits), or batches of 100 "
                            "with --mix (mouse moves included); default: --mode, --batch-size and --mix")
    steps.add_argument("--queue", default=os.environ.get("EYE_QUEUE", "eye.events"),
                       help="the service's RabbitMQ queue, whose depth is read each second")
    steps.add_argument("--broker-url", default=os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"))
    steps.add_argument("--late-ms", type=float, default=10.0,
                       help="a request sent later than this after its due time is late")
    steps.add_argument("--flat-tolerance", type=float, default=0.02,
                       help="a backlog is flat while it grows by less than this fraction of the offered rate")
    steps.add_argument("--p99-limit-ms", type=float, default=100.0)
    steps.add_argument("--sample-every", type=float, default=1.0, help="seconds between samples of stored count and queue")
    steps.add_argument("--step-warmup", type=float, default=5.0,
                       help="seconds at a step's start left out of the slopes (at most a third of the step)")
    steps.add_argument("--warmup-seconds", type=float, default=5.0,
                       help="an untimed step at the first rate before the steps (0: none)")
    steps.add_argument("--step-pause", type=float, default=2.0, help="seconds of quiet between steps")
    args = parser.parse_args()
    stepped = bool(args.steps or args.step_rates)
    if args.steps and not args.capacity:
        parser.error("--steps needs --capacity (events/s)")
    if not args.api_key:
        parser.error("--api-key (or EYE_API_KEY) is required")
    if not args.database_url:
        from app.embedded_database import url_of_running

        folder = Path(os.environ.get("EYE_DATA_DIR", "var")).resolve() / "postgres"
        args.database_url = url_of_running(folder)
        if args.database_url is None:
            parser.error(f"no --database-url, and no embedded server runs in {folder}")
    if stepped:
        import ingest_steps

        return ingest_steps.run(args)
    args.processes, args.concurrency = args.processes or 1, args.concurrency or 8

    sessions = [str(uuid.uuid4()) for _ in range(args.sessions)]
    results, progress = mp.Queue(), mp.Value("l", 0)
    threads_total = args.processes * args.concurrency
    rate_per_thread = args.rate / threads_total if args.rate else 0
    started = time.monotonic()
    deadline = started + args.duration
    processes = [mp.Process(target=load_process, args=(args, sessions, deadline, rate_per_thread, results, progress, i))
                 for i in range(args.processes)]
    for process in processes:
        process.start()
    collected = []
    while len(collected) < threads_total:
        try:
            collected.append(results.get(timeout=1))
        except Exception:
            if not any(process.is_alive() for process in processes):
                print(f"\nerror: {threads_total - len(collected)} load threads ended without a report", file=sys.stderr)
                return 2
            elapsed = time.monotonic() - started
            print(f"\r  {elapsed:5.1f}s  accepted {progress.value:>9,}  ({progress.value / elapsed:,.0f}/s)",
                  end="", file=sys.stderr, flush=True)
    for process in processes:
        process.join()
    load_seconds = time.monotonic() - started
    print(file=sys.stderr)

    accepted, latencies, statuses = merge_reports(collected)

    # Wait until the workers have stored everything that was accepted.
    stored_ids: list[str] = []
    drain_deadline = time.monotonic() + args.drain_timeout
    while time.monotonic() < drain_deadline:
        stored_ids = count_stored(args.database_url, sessions)
        print(f"\r  stored {len(stored_ids):>9,} of {len(accepted):,}", end="", file=sys.stderr, flush=True)
        if len(stored_ids) >= len(accepted):
            break
        time.sleep(0.5)
    end_to_end_seconds = time.monotonic() - started
    print(file=sys.stderr)
    accepted_set, stored_set = set(accepted), set(stored_ids)
    report = {
        "config": {k: v for k, v in vars(args).items() if k not in ("api_key", "database_url")},
        "requests": len(latencies),
        "statuses": statuses,
        "accepted_events": len(accepted),
        "accepted_per_second": len(accepted) / load_seconds,
        "ack_latency_ms": {p: 1000 * percentile(latencies, float(p[1:])) for p in ("p50", "p95", "p99")},
        "stored_events": len(stored_ids),
        "end_to_end_per_second": len(stored_ids) / end_to_end_seconds,
        "lag_seconds": end_to_end_seconds - load_seconds,
        "missing": len(accepted_set - stored_set),
        "duplicated": len(stored_ids) - len(stored_set),
        "extra": len(stored_set - accepted_set),
    }
    report["count_check"] = "pass" if report["missing"] == report["duplicated"] == report["extra"] == 0 else "FAIL"

    rows = [
        ("mode", f"{args.mode}" + (f" x{args.batch_size}" if args.mode == "batch" else "")),
        ("load", f"{args.processes} proc x {args.concurrency} threads, {args.duration:.0f} s"
                 + (f", target {args.rate:,.0f}/s" if args.rate else "")),
        ("requests / statuses", f"{report['requests']:,}  {statuses}"),
        ("accepted events/s", f"{report['accepted_per_second']:,.0f}"),
        ("ack latency p50/p95/p99 ms", "/".join(f"{v:.1f}" for v in report["ack_latency_ms"].values())),
        ("end-to-end events/s", f"{report['end_to_end_per_second']:,.0f}"),
        ("lag after load (s)", f"{report['lag_seconds']:.1f}"),
        ("accepted / stored", f"{len(accepted):,} / {len(stored_ids):,}"),
        ("missing / duplicated / extra", f"{report['missing']} / {report['duplicated']} / {report['extra']}"),
        ("count check", report["count_check"]),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    path = Path(args.json_path or Path(__file__).parent / "results" / f"ingest-{int(time.time())}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"json: {path}")
    return 0 if report["count_check"] == "pass" else 1


if __name__ == "__main__":
    sys.exit(main())
