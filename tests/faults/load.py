"""A steady, bounded load of events over HTTP that records every answer, for the fault tests.

A few threads send single events and small batches with client-made event_ids at a paced rate (a
few hundred events/s in all), each on its own keep-alive connection to 127.0.0.1. Every answer is
kept (status, latency, Retry-After, when it was sent and received), with the event_ids the service
accepted (202). The load stops by itself at its deadline, or earlier on stop().
"""

import http.client
import json
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

PAGES = ["/", "/pricing", "/blog/eye", "/signup", "/docs/api"]


@dataclass(frozen=True)
class Answer:
    """One request and what the service said (times are time.monotonic())."""

    sent_at: float
    answered_at: float
    status: int | str  # an HTTP status, or "error:<exception>" when no answer came
    event_ids: tuple[str, ...]
    retry_after: str | None

    @property
    def events(self) -> int:
        return len(self.event_ids)

    @property
    def latency(self) -> float:
        return self.answered_at - self.sent_at


def make_event(session_id: str) -> dict:
    """A valid event of a registered type (mostly page interactions, some mouse moves)."""
    base = {"event_id": str(uuid.uuid4()), "session_id": session_id, "timestamp": datetime.now(UTC).isoformat()}
    kind = random.choices(["pageview", "cta", "submit", "mouse"], weights=[5, 2, 1, 1])[0]
    host, path = "shop.example.com", random.choice(PAGES)
    if kind == "pageview":
        return {**base, "category": "page interaction", "name": "pageview", "data": {"host": host, "path": path}}
    if kind == "cta":
        return {**base, "category": "page interaction", "name": "cta click",
                "data": {"host": host, "path": path, "element": "buy button"}}
    if kind == "submit":
        return {**base, "category": "form interaction", "name": "submit",
                "data": {"host": host, "path": path, "form": {"plan": "pro"}}}
    t0 = time.time() * 1000 - 500
    points = [{"x": 100 + i * 3, "y": 200 + i * 4, "t": t0 + i * 10} for i in range(10)]
    return {**base, "category": "mouse", "name": "move", "data": {"points": points, "tab": "faults"}}


@dataclass
class Load:
    """Send `rate` events/s from `threads` threads for at most `duration` seconds."""

    url: str
    api_key: str
    rate: float = 300.0
    threads: int = 4
    duration: float = 30.0
    sessions: int = 40
    max_batch: int = 10
    timeout: float = 10.0  # far above the contract's 2 s: a hang shows up as a long latency, not a lost thread
    session_ids: list[str] = field(init=False)
    answers: list[Answer] = field(init=False, default_factory=list)
    sent_ids: set[str] = field(init=False, default_factory=set)
    accepted_ids: list[str] = field(init=False, default_factory=list)
    # (answered_at, ids) per 202, so a test can ask what had been accepted by a given moment.
    accepted_log: list[tuple[float, list[str]]] = field(init=False, default_factory=list)
    started_at: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.session_ids = [str(uuid.uuid4()) for _ in range(self.sessions)]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> "Load":
        self.started_at = time.monotonic()
        deadline = self.started_at + self.duration
        # Half the threads send single events, half small batches: both ingest paths are under load.
        for index in range(self.threads):
            thread = threading.Thread(target=self._run, args=(index, deadline), name=f"load-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def run(self) -> "Load":
        """Send for the whole duration, then return."""
        self.start()
        self.join()
        return self

    def stop(self) -> None:
        """End the load now (threads finish their request in flight)."""
        self._stop.set()

    def join(self) -> None:
        # Bounded: each thread stops at the deadline, plus at most one request timeout.
        for thread in self._threads:
            thread.join(timeout=self.duration + self.timeout + 5)
        assert not any(thread.is_alive() for thread in self._threads), "a load thread did not stop"

    def __enter__(self) -> "Load":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
        self.join()

    def _run(self, index: int, deadline: float) -> None:
        rng = random.Random(index)
        single = index % 2 == 0
        parts = urlsplit(self.url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self.timeout)
        headers = {"X-API-Key": self.api_key, "Content-Type": "application/json"}
        mean_events = 1 if single else (2 + self.max_batch) / 2
        interval = mean_events * self.threads / self.rate
        next_send = time.monotonic() + rng.random() * interval  # spread the threads' first requests
        while not self._stop.is_set():
            # A steady pace: after a slow answer, carry on from now rather than burst to catch up.
            next_send = max(next_send, time.monotonic())
            if next_send >= deadline or self._stop.wait(next_send - time.monotonic()):
                break
            next_send += interval
            count = 1 if single else rng.randint(2, self.max_batch)
            events = [make_event(rng.choice(self.session_ids)) for _ in range(count)]
            if single:
                path, body = "/api/v1/events", json.dumps(events[0])
            else:
                path, body = "/api/v1/events/batch", json.dumps({"events": events})
            with self._lock:
                self.sent_ids.update(event["event_id"] for event in events)
            sent_at = time.monotonic()
            retry_after, ids = None, []
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                status: int | str = response.status
                retry_after = response.getheader("Retry-After")
                if status == 202:
                    answer = json.loads(payload)
                    ids = [answer["event_id"]] if single else answer["event_ids"]
            except (OSError, http.client.HTTPException) as exc:
                status = f"error:{type(exc).__name__}"
                connection.close()
                connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self.timeout)
            answered_at = time.monotonic()
            with self._lock:
                self.answers.append(Answer(sent_at, answered_at, status, tuple(e["event_id"] for e in events),
                                           retry_after))
                if ids:
                    self.accepted_ids += ids
                    self.accepted_log.append((answered_at, ids))
        connection.close()

    # What a test asks afterwards (or, under the lock, while the load runs).

    def accepted_by(self, moment: float) -> set[str]:
        """The event_ids answered 202 at or before `moment` (time.monotonic())."""
        with self._lock:
            return {i for answered_at, ids in self.accepted_log if answered_at <= moment for i in ids}

    def statuses(self) -> Counter:
        with self._lock:
            return Counter(str(answer.status) for answer in self.answers)

    def events_sent(self) -> int:
        with self._lock:
            return sum(answer.events for answer in self.answers)

    def events_per_second(self) -> float:
        with self._lock:
            if not self.answers:
                return 0.0
            span = max(a.answered_at for a in self.answers) - min(a.sent_at for a in self.answers)
            return sum(a.events for a in self.answers) / span if span > 0 else 0.0


@dataclass(frozen=True)
class Tally:
    """What happened to a load's events: sent, accepted (202), stored, and what went wrong."""

    sent: int
    accepted: int
    stored: int
    lost: int  # accepted but not stored
    duplicated: int  # stored rows beyond the first for an event_id
    extra: int  # stored though never answered 202

    @classmethod
    def of(cls, load: Load, stored: Counter) -> "Tally":
        accepted = set(load.accepted_ids)
        return cls(
            sent=load.events_sent(),
            accepted=len(accepted),
            stored=sum(stored.values()),
            lost=len(accepted - stored.keys()),
            duplicated=sum(count - 1 for count in stored.values()),
            extra=len(stored.keys() - accepted),
        )

    def line(self) -> str:
        return (f"sent {self.sent} accepted {self.accepted} stored {self.stored} lost {self.lost} "
                f"duplicated {self.duplicated} extra {self.extra}")
