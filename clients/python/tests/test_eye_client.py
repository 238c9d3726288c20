"""Behaviour of eye_client against a fake Eye server on 127.0.0.1."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
from fake_eye_server import API_KEY, DROP, Answer

from eye_client import EyeClient, reasons
from eye_client.batching import MAX_BODY_BYTES, split_batch
from eye_client.event import MAX_DATA_BYTES, build_event
from eye_client.retry import Backoff, is_retryable, parse_retry_after

SESSION = str(uuid.uuid4())
PAGEVIEW = ("page interaction", "pageview")


def track_pageviews(client: EyeClient, count: int, **extra) -> list[str]:
    """Track `count` pageviews and return their event ids."""
    return [
        client.track(SESSION, *PAGEVIEW, {"host": "example.com", "path": f"/{i}"}, **extra)
        for i in range(count)
    ]


def nested(depth: int) -> list:
    """A list nested `depth` levels deep."""
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


# --- the event on the wire -------------------------------------------------------------------


def test_track_sends_contract_shaped_event(server, make_client):
    client = make_client()
    given_id = uuid.uuid4()
    naive = datetime(2021, 1, 1, 9, 15, 27, 243860)
    paris = datetime(2021, 1, 1, 10, 0, tzinfo=timezone(timedelta(hours=1)))

    first = client.track(SESSION, *PAGEVIEW, {"host": "a.com", "path": "/"})
    second = client.track(
        uuid.UUID(SESSION),
        *PAGEVIEW,
        {"host": "a.com", "path": "/x"},
        timestamp=naive,
        event_id=given_id,
    )
    third = client.track(SESSION, *PAGEVIEW, {"host": "a.com", "path": "/y"}, timestamp=paris)

    assert client.flush(5)
    assert uuid.UUID(first).version == 4
    assert second == str(given_id)
    request = server.received[0]
    assert request.path == "/api/v1/events/batch"
    assert request.headers["X-API-Key"] == API_KEY
    assert request.headers["Content-Type"] == "application/json"
    events = {event["event_id"]: event for event in request.events}
    assert set(events) == {first, second, third}
    assert events[first]["session_id"] == SESSION
    assert events[first]["data"] == {"host": "a.com", "path": "/"}
    assert datetime.fromisoformat(events[first]["timestamp"]).utcoffset() == timedelta(0)
    assert abs(datetime.fromisoformat(events[first]["timestamp"]) - datetime.now(UTC)) < timedelta(
        seconds=30
    )
    assert events[second]["timestamp"] == "2021-01-01T09:15:27.243860+00:00"
    assert events[third]["timestamp"] == "2021-01-01T10:00:00+01:00"


# --- batching --------------------------------------------------------------------------------


def test_full_batches_go_at_once_and_the_rest_waits_for_the_interval(server, make_client):
    client = make_client(batch_size=10, flush_interval=30)
    ids = track_pageviews(client, 25)

    assert server.wait_for_requests(2)
    time.sleep(0.2)
    assert [len(r.events) for r in server.received] == [10, 10]

    assert client.flush(5)
    assert [len(r.events) for r in server.received] == [10, 10, 5]
    assert server.accepted_ids == ids


def test_partial_batch_goes_after_flush_interval(server, make_client):
    client = make_client(batch_size=100, flush_interval=0.3)
    started = time.monotonic()
    ids = track_pageviews(client, 3)

    assert server.wait_for_requests(1, timeout=5)
    waited = server.received[0].at - started
    assert 0.25 <= waited < 3
    assert server.received[0].event_ids == ids


def test_requests_stay_under_the_body_limit(server, make_client):
    client = make_client(batch_size=100)
    big = "x" * (30 * 1024)
    ids = [client.track(SESSION, "blob", "big", {"blob": big}) for _ in range(40)]

    assert client.flush(5)
    assert len(server.received) >= 2
    assert all(len(r.body) <= MAX_BODY_BYTES for r in server.received)
    assert sorted(server.accepted_ids) == sorted(ids)
    assert client.dropped == 0


def test_split_batch_caps_events_per_request():
    items = [build_event(SESSION, "c", "n", {"i": i}) for i in range(1200)]

    chunks = list(split_batch(items))

    assert [len(chunk) for chunk in chunks] == [500, 500, 200]
    assert [item for chunk in chunks for item in chunk] == items


def test_split_batch_cuts_on_bytes():
    items = [build_event(SESSION, "c", "n", {"i": i}) for i in range(10)]
    one = len(items[0].encoded)

    chunks = list(split_batch(items, max_bytes=13 + 3 * one + 2))

    assert [len(chunk) for chunk in chunks] == [3, 3, 3, 1]


# --- retries ---------------------------------------------------------------------------------


def test_retries_then_succeeds_with_the_same_event_ids(server, make_client, drops):
    server.then(
        Answer(503, {"Retry-After": "0"}, {"code": 503, "message": "broker down"}),
        Answer(500, body={"code": 500}),
        DROP,
        Answer(429, {"Retry-After": "0"}, {"code": 429}),
    )
    client = make_client()
    ids = track_pageviews(client, 5)

    assert client.flush(5)
    assert [r.status for r in server.received] == [503, 500, None, 429, 202]
    assert all(r.event_ids == ids for r in server.received)
    assert server.accepted_ids == ids
    assert client.dropped == 0
    assert drops.calls == []


def test_retry_after_is_honoured(server, make_client):
    server.then(Answer(429, {"Retry-After": "1"}, {"code": 429}))
    client = make_client(backoff_base=0.001, backoff_max=5)
    track_pageviews(client, 1)

    assert client.flush(5)
    first, second = server.received
    assert second.at - first.at >= 1.0
    assert second.event_ids == first.event_ids


def test_gives_up_after_max_retries(server, make_client, drops):
    server.default = Answer(500, body={"code": 500})
    client = make_client(max_retries=2)
    ids = track_pageviews(client, 3)

    assert client.flush(5)
    assert len(server.received) == 3
    assert drops.ids(reasons.RETRIES_EXHAUSTED) == ids
    assert client.dropped == 3


@pytest.mark.parametrize("status", [400, 401, 403, 413, 415, 422])
def test_final_statuses_are_not_retried(server, make_client, drops, status):
    server.default = Answer(status, body={"code": status, "message": "no"})
    client = make_client()
    ids = track_pageviews(client, 3)

    assert client.flush(5)
    time.sleep(0.2)
    assert len(server.received) == 1
    assert drops.calls == [(server.received[0].events, f"http_{status}")]
    assert drops.ids() == ids
    assert client.dropped == 3


def test_422_reports_each_rejected_event_by_kind(server, make_client, drops):
    server.then(
        Answer(
            422,
            body={
                "code": 422,
                "status": "Unprocessable Entity",
                "message": "none accepted",
                "errors": {},
                "accepted": 0,
                "event_ids": [],
                "rejected": [
                    {"index": 0, "kind": "invalid_payload", "errors": {"path": ["bad"]}},
                    {"index": 1, "kind": "future_timestamp", "errors": {}},
                ],
            },
        )
    )
    client = make_client()
    first, second = track_pageviews(client, 2)

    assert client.flush(5)
    assert len(server.received) == 1
    assert drops.ids("rejected:invalid_payload") == [first]
    assert drops.ids("rejected:future_timestamp") == [second]
    assert client.dropped == 2


def test_202_with_rejected_items_reports_only_those(server, make_client, drops):
    def reject_second(events):
        ids = [e["event_id"] for e in events]
        return Answer(
            202,
            body={
                "accepted": len(ids) - 1,
                "event_ids": ids[:1] + ids[2:],
                "rejected": [{"index": 1, "kind": "invalid_payload", "errors": {"path": ["bad"]}}],
            },
        )

    server.then(reject_second)
    client = make_client()
    ids = track_pageviews(client, 3)

    assert client.flush(5)
    assert len(server.received) == 1
    assert drops.calls == [([server.received[0].events[1]], "rejected:invalid_payload")]
    assert drops.ids() == [ids[1]]
    assert server.accepted_ids == [ids[0], ids[2]]
    assert client.dropped == 1


def test_is_retryable():
    assert [is_retryable(s) for s in (None, 429, 500, 503, 599)] == [True] * 5
    assert [is_retryable(s) for s in (400, 401, 403, 404, 413, 415, 422)] == [False] * 7


def test_parse_retry_after():
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)

    assert parse_retry_after("3") == 3.0
    assert 55 <= parse_retry_after(in_a_minute) <= 60
    assert parse_retry_after("Mon, 01 Jan 2001 00:00:00 GMT") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("inf") is None


def test_backoff_is_exponential_with_full_jitter_and_capped():
    backoff = Backoff(base=0.5, cap=4.0)

    assert [backoff.delay(n, rand=lambda: 1.0) for n in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff.delay(3, rand=lambda: 0.0) == 0.0
    assert backoff.delay(1000, rand=lambda: 1.0) == 4.0
    assert backoff.delay(0, retry_after=2.0, rand=lambda: 0.0) == 2.0
    assert backoff.delay(0, retry_after=3600, rand=lambda: 0.0) == 4.0


# --- never blocking, never breaking ----------------------------------------------------------


def test_full_queue_drops_and_counts_without_blocking(server, make_client, drops):
    client = make_client(max_queue_size=5, batch_size=100, flush_interval=30)

    started = time.monotonic()
    ids = track_pageviews(client, 8)
    elapsed = time.monotonic() - started

    assert elapsed < 0.5
    assert client.dropped == 3
    assert drops.ids(reasons.QUEUE_FULL) == ids[5:]
    assert client.flush(5)
    assert server.accepted_ids == ids[:5]


def test_flush_returns_false_on_timeout_and_shutdown_drops_the_rest(server, make_client, drops):
    server.default = Answer(503, {"Retry-After": "1"}, {"code": 503})
    client = make_client(backoff_max=5)
    ids = track_pageviews(client, 4)

    started = time.monotonic()
    assert client.flush(0.3) is False
    assert time.monotonic() - started < 1.0

    started = time.monotonic()
    client.shutdown(0.2)
    assert time.monotonic() - started < 1.0
    assert drops.ids(reasons.SHUTDOWN) == ids
    assert client.dropped == 4
    assert server.accepted_ids == []


def test_flush_returns_true_at_once_when_nothing_is_queued(make_client):
    client = make_client()

    started = time.monotonic()
    assert client.flush(5) is True
    assert time.monotonic() - started < 0.5


def test_track_after_shutdown_drops(server, make_client, drops):
    client = make_client()
    client.shutdown(1)

    event_id = track_pageviews(client, 1)[0]

    assert drops.ids(reasons.SHUTDOWN) == [event_id]
    assert client.flush(1)
    assert server.received == []


def test_oversize_event_is_dropped_and_others_still_sent(server, make_client, drops):
    client = make_client()
    too_big = client.track(SESSION, "blob", "big", {"blob": "x" * (MAX_DATA_BYTES + 1)})
    fits = client.track(SESSION, "blob", "big", {"blob": "x" * (MAX_DATA_BYTES - 20)})

    assert client.flush(5)
    assert drops.ids(reasons.OVERSIZE) == [too_big]
    assert client.dropped == 1
    assert server.accepted_ids == [fits]


@pytest.mark.parametrize(
    ("session_id", "category", "data", "timestamp"),
    [
        ("not-a-uuid", "c", {}, None),
        (SESSION, "", {}, None),
        (SESSION, "c" * 65, {}, None),
        (SESSION, "c", ["not", "an", "object"], None),
        (SESSION, "c", {"when": object()}, None),
        (SESSION, "c", {"x": float("nan")}, None),
        (SESSION, "c", {"deep": nested(40)}, None),
        (SESSION, "c", {}, "yesterday"),
        (SESSION, "c", {}, 1700000000),
    ],
)
def test_invalid_event_is_dropped_not_raised(
    server, make_client, drops, session_id, category, data, timestamp
):
    client = make_client()

    event_id = client.track(session_id, category, "n", data, timestamp=timestamp)

    assert drops.ids(reasons.INVALID) == [event_id]
    assert client.dropped == 1
    assert client.flush(1)
    assert server.received == []


def test_on_drop_that_raises_does_not_break_track(make_client):
    def explode(events, reason):
        raise RuntimeError("callback bug")

    client = make_client(max_queue_size=1, flush_interval=30, on_drop=explode)

    ids = track_pageviews(client, 3)

    assert len(set(ids)) == 3
    assert client.dropped == 2


def test_api_key_never_logged(server, make_client, caplog):
    server.then(DROP, Answer(400, body={"code": 400, "message": "bad body"}))
    client = make_client()

    with caplog.at_level(logging.DEBUG):
        track_pageviews(client, 2)
        assert client.flush(5)

    assert "eye_client" in {record.name for record in caplog.records}
    assert API_KEY not in caplog.text
    assert API_KEY not in repr(client)


# --- threads and processes -------------------------------------------------------------------


def test_concurrent_tracking_delivers_each_event_exactly_once(server, make_client):
    client = make_client(batch_size=50)
    per_thread, threads = 250, 8
    results: list[list[str]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def work(slot: int) -> None:
        start.wait()
        results[slot] = track_pageviews(client, per_thread)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert client.flush(10)
    tracked = [event_id for ids in results for event_id in ids]
    assert len(set(tracked)) == per_thread * threads
    assert Counter(server.accepted_ids) == Counter(tracked)
    assert max(Counter(server.accepted_ids).values()) == 1
    assert client.dropped == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_gets_a_fresh_queue_and_can_send(server, make_client):
    client = make_client(batch_size=100, flush_interval=30)
    parent_ids = track_pageviews(client, 3)  # held by the parent: the interval is long
    child_id = str(uuid.uuid4())

    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, reported through the exit status
        status = 3
        try:
            if client.pending != 0:
                status = 1
            else:
                client.track(
                    SESSION, *PAGEVIEW, {"host": "a.com", "path": "/child"}, event_id=child_id
                )
                status = 0 if client.flush(5) and client.dropped == 0 else 2
        finally:
            os._exit(status)

    _, wait_status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(wait_status) == 0
    assert server.accepted_ids == [child_id]
    assert client.flush(5)
    assert Counter(server.accepted_ids) == Counter([child_id, *parent_ids])


EXITING_APP = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from eye_client import EyeClient
    client = EyeClient(sys.argv[2], "k", flush_interval=60, exit_timeout=0.5,
                       backoff_base=0.01, backoff_max=5)
    print(client.track(sys.argv[3], "page interaction", "pageview", {"host": "a", "path": "/"}))
    """
)


def run_exiting_app(url: str) -> tuple[str, float]:
    """Run a script that tracks one event and exits; return its event id and run time."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", EXITING_APP, str(Path(__file__).resolve().parents[1]), url, SESSION],
        capture_output=True,
        text=True,
        timeout=15,
        check=True,
    )
    return done.stdout.strip(), time.monotonic() - started


def test_events_are_flushed_at_interpreter_exit(server):
    event_id, _ = run_exiting_app(server.url)

    assert server.accepted_ids == [event_id]


def test_exit_flush_is_bounded_when_the_server_is_down(server):
    server.default = Answer(503, {"Retry-After": "1"}, {"code": 503})

    event_id, took = run_exiting_app(server.url)

    assert server.received and server.received[0].event_ids == [event_id]
    assert server.accepted_ids == []
    assert took < 5
