"""Live mouse metrics under load: pages that send their pointer moves and watch the chart's feed.

    python bench/mouse.py --url $EYE_URL --pages 100 --duration 30

Each simulated page gets its own dashboard token (POST /dashboard/token), connects Socket.IO with
it, and sends a `mouse / move` batch (25 points, one per 10 ms) every 250 ms through
POST /api/v1/events. The delay of a batch runs from just before its POST to the arrival of the
`mouse_metrics` message it produced (matched by `t`, the batch's latest point). Reports the delay's
p50/p95/p99/max after a warm-up, the POST latency, and batches whose message never came.
"""

import argparse
import http.client
import json
import math
import resource
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

import socketio

POINTS_PER_BATCH = 25
SAMPLE_MS = 10


def mouse_move_event(session_id: str, end_ms: float, angle: float) -> dict:
    """A `mouse / move` batch as a page sends it: 25 points along a circle from `angle`, one every
    10 ms, the last at `end_ms` (epoch milliseconds)."""
    points = []
    for i in range(POINTS_PER_BATCH):
        a = angle + i * 0.02
        points.append({"x": round(640 + 300 * math.cos(a), 2), "y": round(360 + 200 * math.sin(a), 2),
                       "t": round(end_ms - (POINTS_PER_BATCH - 1 - i) * SAMPLE_MS, 3)})
    return {"event_id": str(uuid.uuid4()), "session_id": session_id, "category": "mouse", "name": "move",
            "data": {"points": points, "viewport": {"w": 1280, "h": 720}, "tab": "bench"},
            "timestamp": datetime.now(UTC).isoformat()}


class Page:
    """One dashboard page: a token, a Socket.IO connection, and a loop that sends its batches."""

    def __init__(self, url: str, index: int):
        self.url, self.index = url, index
        parts = urlsplit(url)
        self.http = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
        grant = self._request("POST", "/dashboard/token", None, {})
        self.token, self.session_id = grant["token"], grant["session_id"]
        self.sent: dict[float, float] = {}  # batch's latest t -> perf_counter() when it was sent
        self.send_times: list[float] = []
        self.delays: list[tuple[float, float]] = []  # (sent at, delay in s)
        self.post_latencies: list[float] = []
        self.failures: dict[str, int] = {}
        self.resent = 0  # batches sent again on a new connection after the server closed an idle one
        self.lock = threading.Lock()
        self.socket = socketio.Client(reconnection=False)
        self.socket.on("mouse_metrics", self._on_metrics)
        self.socket.connect(url, auth={"token": self.token}, transports=["websocket"], wait_timeout=10)

    def _request(self, method: str, path: str, body, headers: dict):
        self.http.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = self.http.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
        return json.loads(data)

    def _on_metrics(self, message: dict) -> None:
        received = time.perf_counter()
        with self.lock:
            sent = self.sent.pop(message["t"], None)
        if sent is not None:
            self.delays.append((sent, received - sent))

    def _batch(self, angle: float) -> tuple[dict, float]:
        """25 points along a circle ending now, as a browser would have sampled them."""
        event = mouse_move_event(self.session_id, round(time.time() * 1000, 3), angle)
        return event, event["data"]["points"][-1]["t"]

    def run(self, start_at: float, stop_at: float, interval: float) -> None:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
        tick, angle = start_at, self.index
        while tick < stop_at:
            time.sleep(max(0.0, tick - time.perf_counter()))
            event, last_t = self._batch(angle)
            angle += POINTS_PER_BATCH * 0.02
            sent = time.perf_counter()
            with self.lock:
                self.sent[last_t] = sent
            self.send_times.append(sent)
            body = json.dumps(event)
            try:
                try:
                    status = self._post(body, headers)
                except (BrokenPipeError, ConnectionResetError):
                    # The server may close a keep-alive connection that sat idle (gunicorn: after 2 s,
                    # as while the pages were being set up); a browser then sends again on a new one.
                    # Safe: the batch's event_id makes a second copy a no-op. Counted, not failed.
                    self.http.close()
                    self.resent += 1
                    status = self._post(body, headers)
                if status != 202:
                    self.failures[str(status)] = self.failures.get(str(status), 0) + 1
                self.post_latencies.append(time.perf_counter() - sent)
            except OSError as exc:
                self.failures[type(exc).__name__] = self.failures.get(type(exc).__name__, 0) + 1
                self.http.close()
            tick += interval

    def _post(self, body: str, headers: dict) -> int:
        self.http.request("POST", "/api/v1/events", body=body, headers=headers)
        response = self.http.getresponse()
        response.read()
        return response.status

    def close(self) -> None:
        self.socket.disconnect()
        self.http.close()


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank q-th percentile (NaN for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the service's base URL (EYE_URL)")
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between a page's batches")
    parser.add_argument("--duration", type=float, default=30, help="seconds of load after the warm-up")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of load not counted")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    print(f"connecting {args.pages} pages to {args.url} …", file=sys.stderr)
    pages = [Page(args.url, i) for i in range(args.pages)]
    time.sleep(1)  # the server binds its message-queue listener after its first connection
    start = time.perf_counter() + 0.5
    count_from, stop = start + args.warmup, start + args.warmup + args.duration
    # Pages start spread over one interval, as independent visitors would.
    threads = [threading.Thread(target=p.run, args=(start + args.interval * i / len(pages), stop, args.interval))
               for i, p in enumerate(pages)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(2)  # let the last messages arrive

    delays = [d for p in pages for sent, d in p.delays if sent >= count_from]
    posts = [latency for p in pages for latency in p.post_latencies]
    counted_sent = sum(1 for p in pages for sent in p.send_times if sent >= count_from)
    failures: dict[str, int] = {}
    for p in pages:
        for kind, n in p.failures.items():
            failures[kind] = failures.get(kind, 0) + n
    for p in pages:
        p.close()

    ms = 1000
    figures = {
        "pages": args.pages, "interval_s": args.interval, "duration_s": args.duration,
        "batches_counted": counted_sent, "batches_per_s": round(counted_sent / args.duration, 1),
        "metrics_received": len(delays), "never_received": counted_sent - len(delays),
        "delay_ms": {"p50": round(percentile(delays, 50) * ms, 1), "p95": round(percentile(delays, 95) * ms, 1),
                     "p99": round(percentile(delays, 99) * ms, 1),
                     "max": round(max(delays, default=float("nan")) * ms, 1)},
        "post_ms": {"p50": round(percentile(posts, 50) * ms, 1), "p95": round(percentile(posts, 95) * ms, 1)},
        "failures": failures,
        "resent": sum(p.resent for p in pages),
        # This process competes with the service for the same cores: its share, for the record.
        "bench_cpu_s": round(sum(getattr(resource.getrusage(resource.RUSAGE_SELF), f) for f in ("ru_utime", "ru_stime")), 1),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    return 0 if delays and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
