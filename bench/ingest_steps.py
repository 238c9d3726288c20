"""Constant-rate steps for bench/ingest.py: what rate can be sent all day without the backlog growing?

Run through `bench/ingest.py --steps 25,50,… --capacity N` (percent of N events/s) or
`--step-rates 100,200,…` (events/s); bench/README.md, "Sustainable rate", explains the columns and
the verdict. Each step holds one offered rate for --step-seconds on an open-loop schedule: request
k of the step is due at t0 + k × interval whatever happened to the others, and its ack latency is
timed from that due time, so a request that had to wait for a free connection (or for the bench's
own CPU) counts its wait: no coordinated omission. Between steps the bench waits until everything
the step was promised is stored, so each step starts from an empty backlog.
"""

import http.client
import json
import multiprocessing as mp
import queue
import random
import resource
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import psutil
from ingest import make_event, merge_reports, parse_mix, percentile

PLAIN_MIX = "pageview=5,cta=2,submit=1"
# name: (mode, batch size, mix; None = --mix, whose default includes mouse moves)
SHAPES = {
    "single": ("single", 1, PLAIN_MIX),
    "batch10": ("batch", 10, PLAIN_MIX),
    "batch100": ("batch", 100, PLAIN_MIX),
    "mixed": ("batch", 100, None),
}
GROUPS = ("web", "worker", "postgresql", "rabbitmq", "bench")
# A connection idle this long is replaced before use: gunicorn closes idle keep-alive ones after 2 s.
KEEPALIVE_SECONDS = 1.5


# --- the load: persistent processes, each with a scheduler thread and a pool of senders ---------

class Sender(threading.Thread):
    """One keep-alive connection; takes (due, path, body) jobs from the scheduler, one at a time."""

    def __init__(self, url: str, api_key: str, idle: list, cond: threading.Condition, progress, late_s: float):
        super().__init__(daemon=True)
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.headers = {"X-API-Key": api_key, "Content-Type": "application/json"}
        self.idle, self.cond, self.progress, self.late_s = idle, cond, progress, late_s
        self.ready = threading.Event()
        self.job = None
        self.accepted: list[str] = []
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}
        self.late = 0
        self.reconnects = 0

    def run(self) -> None:
        connection, last_used = None, 0.0
        while True:
            with self.cond:
                self.idle.append(self)
                self.cond.notify_all()
            self.ready.wait()
            self.ready.clear()
            if self.job is None:
                break
            due, path, body, single = self.job
            started = time.monotonic()
            if started - due > self.late_s:
                self.late += 1
            status, answer = "", b""
            for attempt in (0, 1):
                reused = connection is not None
                if reused and time.monotonic() - last_used > KEEPALIVE_SECONDS:
                    connection.close()
                    connection, reused = None, False
                if connection is None:
                    connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
                try:
                    connection.request("POST", path, body=body, headers=self.headers)
                    response = connection.getresponse()
                    answer, status = response.read(), str(response.status)
                    break
                except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as exc:
                    # The server closed a kept-alive connection as we reused it: the request never
                    # reached a handler; again once on a new connection (the event_ids are ours, so
                    # even a request that did arrive would be stored once).
                    connection.close()
                    connection = None
                    if attempt == 0 and reused:
                        self.reconnects += 1
                        continue
                    status = f"error:{type(exc).__name__}"
                except (OSError, http.client.HTTPException) as exc:
                    connection.close()
                    connection = None
                    status = f"error:{type(exc).__name__}"
                    break
            last_used = time.monotonic()
            self.latencies.append(last_used - due)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == "202":
                answer = orjson.loads(answer)
                ids = [answer["event_id"]] if single else answer["event_ids"]
                self.accepted += ids
                with self.progress.get_lock():
                    self.progress.value += len(ids)
        if connection is not None:
            connection.close()


def run_share(index: int, count: int, threads: int, url: str, api_key: str, command: dict, progress,
              late_s: float) -> dict:
    """This process's share of one step: requests index, index + count, … of the step's schedule."""
    random.seed(command["seed"] * 1000 + index)
    mix, sessions = parse_mix(command["mix"]), command["sessions"]
    per_request, single = command["per_request"], command["mode"] == "single"
    path = "/api/v1/events" if single else "/api/v1/events/batch"
    interval = per_request / command["rate"]
    t0, deadline = command["t0"], command["deadline"]
    wall_minus_monotonic = time.time() - time.monotonic()
    idle: list[Sender] = []
    cond = threading.Condition()
    senders = [Sender(url, api_key, idle, cond, progress, late_s) for _ in range(threads)]
    for sender in senders:
        sender.start()
    time.sleep(max(0.0, t0 - time.monotonic()))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_start = usage.ru_utime + usage.ru_stime
    scheduled = 0
    while True:
        due = t0 + (scheduled * count + index) * interval
        if due >= deadline:
            break
        scheduled += 1
        # Made before its due time (and stamped with it), so the event's own making is not counted.
        events = [make_event(random.choice(mix), random.choice(sessions), due + wall_minus_monotonic)
                  for _ in range(per_request)]
        body = orjson.dumps(events[0]) if single else orjson.dumps({"events": events})
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        with cond:
            while not idle:  # every connection busy: this request goes out late, timed from `due`
                cond.wait()
            sender = idle.pop()  # the most recently used: its connection is the warmest
        sender.job = (due, path, body, single)
        sender.ready.set()
    with cond:
        while len(idle) < len(senders):
            cond.wait()
    for sender in senders:
        sender.job = None
        sender.ready.set()
    for sender in senders:
        sender.join()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    statuses: dict[str, int] = {}
    for sender in senders:
        for status, n in sender.statuses.items():
            statuses[status] = statuses.get(status, 0) + n
    return {
        "scheduled": scheduled,
        "accepted": [i for s in senders for i in s.accepted],
        "latencies": [v for s in senders for v in s.latencies],
        "statuses": statuses,
        "late": sum(s.late for s in senders),
        "reconnects": sum(s.reconnects for s in senders),
        "cpu_seconds": usage.ru_utime + usage.ru_stime - cpu_start,
    }


def load_process(index: int, count: int, threads: int, url: str, api_key: str, commands, results, progress,
                 late_s: float) -> None:
    while (command := commands.get()) is not None:
        results.put(run_share(index, count, threads, url, api_key, command, progress, late_s))


# --- what the bench watches: PostgreSQL, the queue, and the CPU of each process group ------------

def cpu_of(process: psutil.Process) -> float:
    t = process.cpu_times()
    # Children reaped meanwhile (PostgreSQL's ended backends) count in their parent's children times.
    return t.user + t.system + t.children_user + t.children_system


def listeners(port: int) -> list[int]:
    try:
        return sorted({c.pid for c in psutil.net_connections("tcp")
                       if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid})
    except psutil.Error:
        return []


class Probe:
    def __init__(self, database_url: str, broker_url: str, queue_name: str, web_url: str):
        import psycopg2

        self.db = psycopg2.connect(database_url)
        self.db.autocommit = True
        self.broker_url, self.queue_name = broker_url, queue_name
        self.web_port = urlsplit(web_url).port or 80
        self.broker_port = (urlsplit(broker_url).port or 5672) if broker_url.startswith("amqp") else None
        self._connection = self._channel = None
        self._workers: dict[tuple, bool] = {}
        # The PostgreSQL server: the parent of this connection's backend, if it runs on this machine.
        self.postmaster = None
        with self.db.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid(), current_database()")
            backend, database = cursor.fetchone()
        try:
            process = psutil.Process(backend)
            if process.name() in ("postgres", "postmaster") and database in " ".join(process.cmdline()):
                self.postmaster = process.ppid()
        except psutil.Error:
            pass

    def close(self) -> None:
        self.db.close()
        if self._connection is not None:
            self._connection.release()

    def stored_count(self, sessions: list[str]) -> int:
        with self.db.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM events WHERE session_id = ANY(%s::uuid[])", (sessions,))
            return cursor.fetchone()[0]

    def stored_ids(self, sessions: list[str]) -> list[str]:
        with self.db.cursor() as cursor:
            cursor.execute("SELECT event_id::text FROM events WHERE session_id = ANY(%s::uuid[])", (sessions,))
            return [row[0] for row in cursor.fetchall()]

    def queue_depth(self) -> int | None:
        """Messages ready in the queue (a passive declare: no management plugin needed); None if unknown."""
        if self.broker_port is None:
            return None
        from kombu import Connection

        try:
            if self._connection is None:
                self._connection = Connection(self.broker_url, connect_timeout=5)
                self._connection.connect()
            if self._channel is None:
                self._channel = self._connection.channel()
            return self._channel.queue_declare(queue=self.queue_name, passive=True).message_count
        except Exception:  # no such queue (the channel is closed) or no broker: unknown this time
            try:
                self._connection.release()
            except Exception:
                pass
            self._connection = self._channel = None
            return None

    def groups(self) -> dict[tuple, tuple[str, psutil.Process]]:
        """(pid, create time) → (group, process) for the service's processes and its servers'."""
        found: dict[tuple, tuple[str, psutil.Process]] = {}

        def add(process: psutil.Process, group: str, with_children: bool = True) -> None:
            try:
                for p in [process, *(process.children(recursive=True) if with_children else [])]:
                    found.setdefault((p.pid, p.create_time()), (group, p))
            except psutil.Error:
                pass

        for pid in listeners(self.web_port):  # gunicorn: its master and every worker process
            try:
                top = psutil.Process(pid)
                while (parent := top.parent()) is not None and "gunicorn" in " ".join(parent.cmdline()):
                    top = parent
                add(top, "web")
            except psutil.Error:
                pass
        if self.postmaster is not None:
            # The server and its children, less the backends of other databases (other users' work).
            with self.db.cursor() as cursor:
                cursor.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'"
                               " AND datname IS DISTINCT FROM current_database()")
                others = {row[0] for row in cursor.fetchall()}
            try:
                server = psutil.Process(self.postmaster)
                add(server, "postgresql", with_children=False)
                for child in server.children():
                    if child.pid not in others:
                        add(child, "postgresql")
            except psutil.Error:
                pass
        if self.broker_port is not None:
            for pid in listeners(self.broker_port):
                try:
                    add(psutil.Process(pid), "rabbitmq")
                except psutil.Error:
                    pass
        for process in psutil.process_iter(["cmdline"]):  # celery processes that consume our queue
            try:
                key = (process.pid, process.create_time())
                if key in found or "celery" not in " ".join(process.info["cmdline"] or []):
                    continue
                if key not in self._workers:
                    queue_name = process.environ().get("EYE_QUEUE", "eye.events")
                    self._workers[key] = queue_name == self.queue_name
                if self._workers[key]:
                    add(process, "worker", with_children=False)
            except psutil.Error:
                pass
        return found

    def cpu_snapshot(self) -> dict:
        procs = {}
        for key, (group, process) in self.groups().items():
            try:
                procs[key] = (group, cpu_of(process))
            except psutil.Error:
                pass
        t = psutil.cpu_times()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {"at": time.monotonic(), "procs": procs, "busy": sum(t) - t.idle - getattr(t, "iowait", 0),
                "self": usage.ru_utime + usage.ru_stime}


def cpu_split(before: dict, after: dict, bench_children: float) -> dict:
    """CPU-seconds per group between two snapshots; the bench = this process + its load processes."""
    groups = dict.fromkeys(GROUPS, 0.0)
    for key, (group, cpu) in after["procs"].items():
        groups[group] += cpu - before["procs"].get(key, (group, 0.0))[1]
    for key, (group, cpu) in before["procs"].items():
        if key not in after["procs"]:  # gone: its parent's children times now hold its whole life
            groups[group] -= cpu
    groups["bench"] = after["self"] - before["self"] + bench_children
    machine = after["busy"] - before["busy"]
    groups["rest of machine"] = machine - sum(groups.values())
    groups["machine"] = machine
    return {g: round(v, 3) for g, v in groups.items()}


# --- steps -------------------------------------------------------------------------------------

def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (t, y) points: y's growth per second."""
    if len(points) < 3:
        return None
    n = len(points)
    mt, my = sum(t for t, _ in points) / n, sum(y for _, y in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (y - my) for t, y in points) / var if var else None


def step_rates(args) -> list[float]:
    if args.step_rates:
        return [float(r) for r in args.step_rates.split(",")]
    return [args.capacity * float(p) / 100 for p in args.steps.split(",")]


def run_step(args, number: int, rate: float, shape: dict, commands, results, progress, probe: Probe,
             seconds: float) -> dict:
    per_request = shape["batch_size"] if shape["mode"] == "batch" else 1
    sessions = [str(uuid.uuid4()) for _ in range(args.sessions)]
    t0 = time.monotonic() + 1.0  # the load processes start their senders meanwhile
    deadline = t0 + seconds
    base = progress.value
    for q in commands:
        q.put({"t0": t0, "deadline": deadline, "rate": rate, "per_request": per_request, "mode": shape["mode"],
               "mix": shape["mix"], "sessions": sessions, "seed": number})
    time.sleep(max(0.0, t0 - time.monotonic()))
    start = probe.cpu_snapshot()
    depth_start = probe.queue_depth()
    samples, collected = [], []
    next_sample = time.monotonic()
    while len(collected) < len(commands):
        if time.monotonic() >= next_sample:
            accepted_so_far = progress.value - base
            before = time.monotonic()
            stored, depth = probe.stored_count(sessions), probe.queue_depth()
            at = (before + time.monotonic()) / 2 - t0
            samples.append({"t": round(at, 3), "accepted": accepted_so_far, "stored": stored, "queue": depth})
            print(f"\r  step {number}: {rate:,.0f}/s  {at:5.1f}s  accepted {accepted_so_far:>8,}  stored {stored:>8,}"
                  f"  queue {depth if depth is not None else '?':>6}   ", end="", file=sys.stderr, flush=True)
            next_sample += args.sample_every
        try:
            collected.append(results.get(timeout=max(0.01, min(0.5, next_sample - time.monotonic()))))
        except queue.Empty:
            pass
    end = probe.cpu_snapshot()
    load_seconds = end["at"] - t0
    stored_at_end = probe.stored_count(sessions)
    depth_end = probe.queue_depth()

    accepted, latencies, statuses = merge_reports(collected)
    cpu = cpu_split(start, end, sum(c["cpu_seconds"] for c in collected))

    # Until everything the step was promised is stored: the count check, and an empty backlog for the next.
    stored_ids: list[str] = []
    drain_deadline = time.monotonic() + args.drain_timeout
    while True:
        stored_ids = probe.stored_ids(sessions)
        print(f"\r  step {number}: stored {len(stored_ids):>8,} of {len(accepted):,}" + " " * 30, end="",
              file=sys.stderr, flush=True)
        if len(stored_ids) >= len(accepted) or time.monotonic() > drain_deadline:
            break
        time.sleep(0.5)
    drain_seconds = time.monotonic() - t0 - load_seconds
    print(file=sys.stderr)
    accepted_set, stored_set = set(accepted), set(stored_ids)

    warmup = min(args.step_warmup, seconds / 3)
    judged = [s for s in samples if warmup <= s["t"] <= seconds + 0.5]
    queue_slope = slope([(s["t"], s["queue"]) for s in judged if s["queue"] is not None])
    backlog_slope = slope([(s["t"], s["accepted"] - s["stored"]) for s in judged])
    requests = sum(c["scheduled"] for c in collected)
    step = {
        "step": number,
        "target_per_second": rate,
        "offered_per_second": requests * per_request / seconds,
        "offered_requests_per_second": requests / seconds,
        "requests": requests,
        "statuses": statuses,
        "late_requests": sum(c["late"] for c in collected),
        "reconnects": sum(c["reconnects"] for c in collected),
        "load_seconds": round(load_seconds, 3),
        "accepted_events": len(accepted),
        "accepted_per_second": len(accepted) / load_seconds,
        "stored_at_end_of_load": stored_at_end,
        "stored_per_second": stored_at_end / load_seconds,
        "drain_seconds": round(drain_seconds, 2),
        "queue_depth_start": depth_start,
        "queue_depth_end": depth_end,
        "queue_slope_per_second": queue_slope,
        "backlog_slope_per_second": backlog_slope,
        "ack_latency_ms": {p: 1000 * percentile(latencies, float(p[1:])) for p in ("p50", "p99", "p99.9")},
        "cpu_seconds": cpu,
        "cpu_seconds_per_1000_events": {g: (round(1000 * cpu[g] / len(accepted), 3) if accepted else None)
                                        for g in (*GROUPS, "machine")},
        "machine_cpu_percent": round(100 * cpu["machine"] / load_seconds, 1),
        "load_average": round(psutil.getloadavg()[0], 2),
        "stored_events": len(stored_ids),
        "missing": len(accepted_set - stored_set),
        "duplicated": len(stored_ids) - len(stored_set),
        "extra": len(stored_set - accepted_set),
        "samples": samples,
    }
    step["count_check"] = "pass" if step["missing"] == step["duplicated"] == step["extra"] == 0 else "FAIL"
    judge(step, args)
    return step


def judge(step: dict, args) -> None:
    """Sustainable: a flat backlog, nothing lost, p99 within the limit; the reasons when not."""
    tol = args.flat_tolerance
    reasons = []
    q = step["queue_slope_per_second"]
    if q is not None and q > tol * step["offered_requests_per_second"]:
        reasons.append("queue grows")
    b = step["backlog_slope_per_second"]
    if b is None or b > tol * step["offered_per_second"]:
        reasons.append("storage falls behind")
    if step["count_check"] != "pass":
        reasons.append("count check")
    if any(status != "202" for status in step["statuses"]):
        reasons.append("refused/errors")
    if not step["ack_latency_ms"]["p99"] <= args.p99_limit_ms:
        reasons.append(f"p99 > {args.p99_limit_ms:g} ms")
    step["sustainable"] = not reasons
    step["reasons"] = reasons


def verdict(steps: list[dict], args) -> dict:
    good = [s for s in steps if s["sustainable"]]
    best = max(good, key=lambda s: s["target_per_second"]) if good else None
    below = [s["step"] for s in steps
             if best and not s["sustainable"] and s["target_per_second"] < best["target_per_second"]]
    rule = (f"highest step with queue slope < {100 * args.flat_tolerance:g} % of the offered requests/s, "
            f"unstored-backlog slope < {100 * args.flat_tolerance:g} % of the offered events/s, the count check "
            f"passed, only 202 answers, and ack p99 <= {args.p99_limit_ms:g} ms")
    if best is None:
        text = "no step was sustainable"
    else:
        text = f"sustainable up to {best['target_per_second']:,.0f} events/s (step {best['step']})"
        higher = [s for s in steps if s["target_per_second"] > best["target_per_second"]]
        if higher:
            text += f"; {higher[0]['target_per_second']:,.0f}/s was not ({', '.join(higher[0]['reasons'])})"
        if below:
            text += f"; but lower step(s) {below} failed: noisy, repeat"
    return {"sustainable_per_second": best["target_per_second"] if best else None,
            "step": best["step"] if best else None, "failed_below": below, "text": text, "rule": rule}


def fmt(value, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def print_table(steps: list[dict]) -> None:
    header = ["step", "offered/s", "accepted/s", "stored/s", "drain s", "queue/s", "backlog/s", "p50 ms", "p99 ms",
              "p99.9 ms", "late", "non-202", "web", "worker", "pg", "rmq", "bench", "count", "sustainable"]
    rows = []
    for s in steps:
        per_k = s["cpu_seconds_per_1000_events"]
        rows.append([
            str(s["step"]), fmt(s["offered_per_second"]), fmt(s["accepted_per_second"]), fmt(s["stored_per_second"]),
            fmt(s["drain_seconds"], ".1f"), fmt(s["queue_slope_per_second"], "+.1f"),
            fmt(s["backlog_slope_per_second"], "+.1f"),
            *(fmt(s["ack_latency_ms"][p], ".1f") for p in ("p50", "p99", "p99.9")),
            str(s["late_requests"]), str(sum(n for st, n in s["statuses"].items() if st != "202")),
            *(fmt(per_k[g], ".2f") for g in GROUPS),
            s["count_check"], "yes" if s["sustainable"] else "no: " + ", ".join(s["reasons"]),
        ])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("CPU-seconds per 1,000 accepted events: web, worker, pg, rmq, bench")
    for line in [header, *rows]:
        print("  ".join(c.rjust(w) if i < len(line) - 1 else c for i, (c, w) in enumerate(zip(line, widths, strict=True))))


def run(args) -> int:
    """The step mode of bench/ingest.py."""
    if args.shape:
        mode, batch_size, mix = SHAPES[args.shape]
        shape = {"name": args.shape, "mode": mode, "batch_size": batch_size, "mix": mix or args.mix}
    else:
        shape = {"name": f"{args.mode}" + (f"x{args.batch_size}" if args.mode == "batch" else ""),
                 "mode": args.mode, "batch_size": args.batch_size, "mix": args.mix}
    rates = step_rates(args)
    processes, threads = args.processes or 2, args.concurrency or 32
    # The load processes first, while this process has no thread and no connection to fork with.
    commands = [mp.Queue() for _ in range(processes)]
    results, progress = mp.Queue(), mp.Value("q", 0)
    loaders = [mp.Process(target=load_process, daemon=True,
                          args=(i, processes, threads, args.url, args.api_key, commands[i], results, progress,
                                args.late_ms / 1000))
               for i in range(processes)]
    for loader in loaders:
        loader.start()
    probe = Probe(args.database_url, args.broker_url, args.queue, args.url)
    steps: list[dict] = []
    warmups: list[dict] = []
    try:
        if probe.queue_depth() is None:
            print(f"  queue {args.queue!r}: depth unknown (no such queue on {urlsplit(args.broker_url).netloc}?)",
                  file=sys.stderr)
        if args.warmup_seconds > 0:
            # Untimed: the first requests of a fresh service (connections, lazy imports) are not its rate.
            warmup = run_step(args, 0, rates[0], shape, commands, results, progress, probe, args.warmup_seconds)
            warmups.append(warmup)
            print(f"  warm-up at {rates[0]:,.0f}/s: count check {warmup['count_check']}, "
                  f"p99 {warmup['ack_latency_ms']['p99']:.1f} ms", file=sys.stderr)
            time.sleep(args.step_pause)
        for number, rate in enumerate(rates, 1):
            steps.append(run_step(args, number, rate, shape, commands, results, progress, probe, args.step_seconds))
            if steps[-1]["missing"] and steps[-1]["stored_events"] < steps[-1]["accepted_events"]:
                print(f"  step {number} did not drain within {args.drain_timeout:g} s: no further steps",
                      file=sys.stderr)
                break
            # Let the worker finish what it holds (rejections, acks) before the next step starts.
            settle = time.monotonic() + 30
            while (probe.queue_depth() or 0) > 0 and time.monotonic() < settle:
                time.sleep(0.5)
            if number < len(rates):
                time.sleep(args.step_pause)
    finally:
        for q in commands:
            q.put(None)
        for loader in loaders:
            loader.join(timeout=10)
        probe.close()

    result = {
        "config": {k: v for k, v in vars(args).items() if k not in ("api_key", "database_url")}
        | {"shape": shape, "processes": processes, "concurrency": threads, "rates": rates},
        "machine": {"cpus": psutil.cpu_count(), "load_average_end": psutil.getloadavg()},
        "warmup": warmups[0] if warmups else None,
        "steps": steps,
        "verdict": verdict(steps, args),
        "count_check": "pass" if steps and all(s["count_check"] == "pass" for s in [*steps, *warmups])
        else "FAIL",
    }
    print(f"shape {shape['name']} (mix {shape['mix']}), {processes} load processes x {threads} connections, "
          f"{args.step_seconds:g} s per step")
    print_table(steps)
    print(f"verdict: {result['verdict']['text']}")
    print(f"count check (all steps): {result['count_check']}")
    path = Path(args.json_path or Path(__file__).parent / "results"
                / f"ingest-steps-{shape['name']}-{int(time.time())}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"json: {path}")
    return 0 if result["count_check"] == "pass" else 1
