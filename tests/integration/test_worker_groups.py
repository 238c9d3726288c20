"""A worker stores the ingest messages waiting behind its own in one transaction (tasks/grouping.py),
on the real PostgreSQL and RabbitMQ, with real worker processes (so a SIGKILL is a real one).

Each test has a queue of its own, in a RabbitMQ virtual host of this module's own (the in-process
test worker of other tests never takes from it), and publishes its backlog while no worker runs, one
`send_task` per message, as the API's publisher does. The workers' JSON logs tell what each commit held.
"""

import json
import math
import random
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from itertools import pairwise

import pytest
from kombu import Connection
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from app.extensions import db
from app.identity import keys
from app.messages import PERSIST_EVENTS_TASK, build_message, build_part
from tasks.grouping import QueueReader
from tests.fixtures.activity import committed, connections_waiting_for_lock, in_transaction, poll
from tests.fixtures.apps import migrated_app
from tests.fixtures.services import delete_broker_entities

# What the ingest task logs after each commit (with the number of messages the transaction held),
# and when a group fails as a whole and is stored message by message.
PERSISTED = "persisted"
GROUP_REFUSED = "an ingest group cannot be stored as a whole"
# What Celery logs when a task raised something it does not retry (its message is then acked: lost).
TASK_FAILED = "raised unexpected"


@pytest.fixture(scope="module")
def groups_broker(make_vhost) -> str:
    """A RabbitMQ virtual host of these tests' own: the node names start_worker_process gives
    (test0@host, ...) and their exclusive pidbox queues never meet a worker of another test run on
    this shared machine (which makes a worker exit at start with RESOURCE_LOCKED)."""
    return make_vhost()


@pytest.fixture
def group_env(service_env, groups_broker):
    """The run's database, with a broker (its own virtual host) and an ingest queue of this test's
    own; the queue is deleted at the end, after the test's workers are stopped (this fixture is set
    up before start_worker_process)."""
    queue = f"eye_test_groups_{uuid.uuid4().hex[:10]}"
    yield {**service_env, "CELERY_BROKER_URL": groups_broker, "SOCKETIO_MESSAGE_QUEUE": groups_broker,
           "EYE_QUEUE": queue}
    delete_broker_entities(groups_broker, [queue], [queue, service_env["EYE_SOCKETIO_CHANNEL"]])


@pytest.fixture
def group_app(group_env):
    app = migrated_app(**group_env)
    yield app
    app.extensions["celery"].close()
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def sender(group_app):
    return Sender(group_app)


@pytest.fixture
def database(group_env):
    """An unpooled engine on the test database (no connection outlives the test)."""
    engine = create_engine(group_env["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg2://", 1),
                           poolclass=NullPool)
    yield engine
    engine.dispose()


class Sender:
    """Publishes ingest messages of a fresh application of its own, one message per call."""

    def __init__(self, app):
        self.app = app
        self.name = f"groups-{uuid.uuid4().hex[:8]}"
        with app.app_context():
            self.application_id = keys.get_or_create_application(self.name).id
        self.celery = app.extensions["celery"]

    def send(self, events: list[dict]) -> None:
        message = build_message([build_part(self.application_id, datetime.now(UTC), events, [])])
        self.celery.send_task(PERSIST_EVENTS_TASK, args=[message])


def pageview(session_id: str, **changes) -> dict:
    return {"event_id": str(uuid.uuid4()), "session_id": session_id, "category": "page interaction",
            "name": "pageview", "data": {"host": "groups.example.com", "path": "/"},
            "timestamp": datetime.now(UTC).isoformat(), **changes}


def mouse_move(session_id: str, points: list[tuple[float, float, float]], tab: str, event_id: str | None = None) -> dict:
    return {"event_id": event_id or str(uuid.uuid4()), "session_id": session_id, "category": "mouse",
            "name": "move", "data": {"points": [{"t": t, "x": x, "y": y} for t, x, y in points], "tab": tab},
            "timestamp": datetime.now(UTC).isoformat()}


def worker_env(env: dict, name: str, **extra) -> dict:
    """The env of a worker whose database connections carry `name` (seen in pg_stat_activity)."""
    return {**env, "DATABASE_URL": f"{env['DATABASE_URL']}?application_name={name}", **extra}


def queue_depth(broker_url: str, queue: str) -> int:
    """Messages ready in the queue (neither delivered to a consumer nor taken by a worker)."""
    with Connection(broker_url, connect_timeout=2) as connection:
        _, ready, _ = connection.default_channel.queue_declare(queue, passive=True)
        return ready


def stored_counts(engine, application_id: int, event_ids: list[str]) -> Counter:
    """How many rows each of `event_ids` has in events."""
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT event_id::text, count(*) FROM events WHERE application_id = :app "
            "AND event_id = ANY(CAST(:ids AS uuid[])) GROUP BY event_id"), {"app": application_id, "ids": event_ids})
        return Counter({event_id: count for event_id, count in rows})


def session_counts(engine, session_ids: list[str]) -> dict[str, tuple[int, int]]:
    """Per session: (its event_count, the events stored for it)."""
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT s.session_id::text, s.event_count, "
            "(SELECT count(*) FROM events e WHERE e.session_id = s.session_id) "
            "FROM sessions s WHERE s.session_id = ANY(CAST(:s AS uuid[]))"), {"s": session_ids})
        return {sid: (count, stored) for sid, count, stored in rows}


def rejections(engine, application_id: int) -> list[tuple[str, str]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(
            "SELECT kind, raw FROM rejections WHERE application_id = :app"), {"app": application_id})]


def persisted_records(worker) -> list[dict]:
    """The worker's "persisted" log records (one per committed transaction), from its JSON log."""
    records = []
    for line in worker.log().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("message") == PERSISTED:
            records.append(record)
    return records



def wait_until(predicate, timeout: float, what: str, worker=None, interval: float = 0.05) -> None:
    """Poll `predicate`; fail after `timeout`, or at once if `worker` (a live one) has exited."""
    def done():
        if worker is not None and worker.process.poll() is not None:
            pytest.fail(f"{what}: the worker exited ({worker.process.returncode}):\n{worker.log()[-4000:]}")
        return predicate()
    if not poll(done, timeout, interval):
        log = f"\nworker log:\n{worker.log()[-4000:]}" if worker is not None else ""
        pytest.fail(f"{what}: not within {timeout} s{log}")





def test_a_backlog_is_stored_in_few_transactions_each_event_once_and_an_idle_queue_waits_briefly(
    group_env, group_app, sender, database, start_worker_process
):
    broker_url = group_env["CELERY_BROKER_URL"]
    sessions = [str(uuid.uuid4()) for _ in range(20)]
    events = [pageview(sessions[i % len(sessions)]) for i in range(200)]
    for event in events:
        sender.send([event])
    assert queue_depth(broker_url, group_env["EYE_QUEUE"]) == 200

    worker = start_worker_process(worker_env(group_env, "groups-backlog"), concurrency=1)
    ids = [event["event_id"] for event in events]
    wait_until(lambda: len(stored_counts(database, sender.application_id, ids)) == 200, 60,
               "all 200 events stored", worker)
    time.sleep(0.5)  # a duplicate would show now

    counts = stored_counts(database, sender.application_id, ids)
    assert set(counts) == set(ids) and set(counts.values()) == {1}
    assert all(count == stored == 10 for count, stored in session_counts(database, sessions).values())
    assert len(session_counts(database, sessions)) == 20

    # One record per committed transaction; with single-event messages, a transaction's new events
    # are the messages it held.
    records = persisted_records(worker)
    sizes = [record["new_events"] for record in records]
    assert sum(sizes) == 200, sizes
    # Grouped: a handful of transactions of many messages each, not 200 of one
    # (one pool process, prefetch 1: the limit of 100 messages gives 100 + 100).
    assert max(sizes) > 10 and len(sizes) <= 20, sizes
    assert max(sizes) <= 100, sizes  # EYE_WORKER_GROUP_MESSAGES' default
    assert queue_depth(broker_url, group_env["EYE_QUEUE"]) == 0

    # The queue is idle now: one message alone is stored after the group wait (100 ms by default)
    # at most, in a transaction of its own.
    for _ in range(3):
        single = pageview(sessions[0])
        started = time.monotonic()
        sender.send([single])
        wait_until(lambda single=single: stored_counts(database, sender.application_id, [single["event_id"]]), 10,
                   "a single message stored", worker, interval=0.01)
        elapsed = time.monotonic() - started
        assert elapsed < 2.0, f"a single message on an idle queue took {elapsed:.2f} s"
    wait_until(lambda: len(persisted_records(worker)) == len(records) + 3, 5, "their log records", worker)
    assert [record["new_events"] for record in persisted_records(worker)[len(records):]] == [1, 1, 1]
    assert TASK_FAILED not in worker.log()

    # The log says how many messages each transaction held (here: as many as its new events).
    assert [record["messages"] for record in records] == sizes, records


def test_a_steady_trickle_is_stored_in_groups_within_the_wait_not_a_transaction_per_message(
    group_env, group_app, sender, database, start_worker_process
):
    """At an ordinary steady rate the queue is empty whenever a task looks: without the group wait,
    every message would be a task and a transaction of its own."""
    worker = start_worker_process(worker_env(group_env, "groups-trickle", EYE_WORKER_GROUP_WAIT_MS="200"),
                                  concurrency=1)
    sessions = [str(uuid.uuid4()) for _ in range(5)]
    ready = pageview(sessions[0])
    sender.send([ready])  # the worker is consuming once this one is stored: no backlog below
    wait_until(lambda: stored_counts(database, sender.application_id, [ready["event_id"]]), 60,
               "the first message stored", worker)
    before = len(persisted_records(worker))

    events = [pageview(sessions[i % len(sessions)]) for i in range(100)]
    started = time.monotonic()
    for event in events:  # ~100 messages/s, one event each, as single-event POSTs make them
        sender.send([event])
        time.sleep(0.01)
    sent_in = time.monotonic() - started
    ids = [event["event_id"] for event in events]
    wait_until(lambda: len(stored_counts(database, sender.application_id, ids)) == 100, 30,
               "all 100 events stored", worker, interval=0.01)
    # Stored about as they came: the last one within the wait (and a commit) of its sending.
    assert time.monotonic() - started < sent_in + 2.0
    time.sleep(0.5)  # a duplicate would show now

    counts = stored_counts(database, sender.application_id, ids)
    assert set(counts) == set(ids) and set(counts.values()) == {1}
    records = persisted_records(worker)[before:]
    sizes = [record["new_events"] for record in records]
    assert sum(sizes) == 100, sizes
    # 100 messages over ~1-1.5 s with a 200 ms wait: a handful of transactions, not 100.
    assert len(sizes) <= 25 and max(sizes) >= 5, sizes
    assert TASK_FAILED not in worker.log()


def test_a_group_holding_a_mouse_move_waits_only_the_mouse_wait(
    group_env, group_app, sender, database, start_worker_process
):
    """A live chart waits for a mouse move's metrics: its group waits EYE_WORKER_MOUSE_WAIT_MS, not the
    whole EYE_WORKER_GROUP_WAIT_MS, and a mouse move joining a waiting group brings its end forward."""
    worker = start_worker_process(worker_env(group_env, "groups-mouse-wait", EYE_WORKER_GROUP_WAIT_MS="3000",
                                             EYE_WORKER_MOUSE_WAIT_MS="500"), concurrency=1)
    session_id = str(uuid.uuid4())
    ready = pageview(session_id)
    sender.send([ready])  # waits its 3 s: the worker is consuming once it is stored
    wait_until(lambda: stored_counts(database, sender.application_id, [ready["event_id"]]), 60,
               "the first message stored", worker)

    def seconds_to_store(*events: dict, apart: float = 0.0) -> float:
        started = time.monotonic()
        for event in events:
            sender.send([event])
            time.sleep(apart)
        ids = [event["event_id"] for event in events]
        wait_until(lambda: len(stored_counts(database, sender.application_id, ids)) == len(ids), 20,
                   "the messages stored", worker, interval=0.01)
        return time.monotonic() - started

    now = time.time() * 1000
    assert 0.45 <= seconds_to_store(mouse_move(session_id, [(now, 1, 1), (now + 10, 4, 5)], tab="a")) < 2.0
    assert seconds_to_store(pageview(session_id)) >= 2.5  # the whole wait, for a page view alone
    # A page view waiting for mates, then a mouse move 0.2 s later: both go at the mouse move's end.
    now = time.time() * 1000
    assert seconds_to_store(pageview(session_id), mouse_move(session_id, [(now, 1, 1), (now + 10, 4, 5)], tab="b"),
                            apart=0.2) < 2.0


def test_workers_sigkilled_while_holding_groups_lose_and_duplicate_nothing(
    group_env, group_app, sender, database, start_worker_process
):
    broker_url = group_env["CELERY_BROKER_URL"]
    queue = group_env["EYE_QUEUE"]
    sessions = [str(uuid.uuid4()) for _ in range(30)]
    messages = [[pageview(sessions[(m + i) % len(sessions)]) for i in range(10)] for m in range(300)]
    for events in messages:
        sender.send(events)
    ids = [event["event_id"] for events in messages for event in events]
    assert queue_depth(broker_url, queue) == 300 and len(ids) == 3000

    def stored() -> int:
        return sum(stored_counts(database, sender.application_id, ids).values())

    def stored_messages() -> list[list[dict]]:
        """The messages whose events are stored; a message is stored whole or not at all (one transaction)."""
        counts = stored_counts(database, sender.application_id, ids)
        assert set(counts.values()) <= {1}, "an event stored twice"
        done = [events for events in messages if events[0]["event_id"] in counts]
        partial = [events for events in messages if (events[0]["event_id"] in counts)
                   != all(event["event_id"] in counts for event in events)]
        assert not partial, "a message half stored"
        return done

    def back_in_queue(kill: str) -> int:
        """After a kill: every message not stored is back in the queue, ready for the next worker;
        returns how many stored ones came back too (stored, not yet acknowledged when it died)."""
        unstored = 300 - len(stored_messages())
        if not poll(lambda: queue_depth(broker_url, queue) >= unstored, 10):
            pytest.fail(f"{kill}: {unstored} messages not stored, only {queue_depth(broker_url, queue)} in the queue")
        depths = [queue_depth(broker_url, queue)]
        # Until the broker has requeued all that the dead connections held (two reads 0.3 s apart agree).
        poll(lambda: depths.append(queue_depth(broker_url, queue)) or depths[-1] == depths[-2], 5, 0.3)
        return depths[-1] - unstored

    workers, figures = [], {}
    with database.connect().execution_options(isolation_level="AUTOCOMMIT") as watch:
        # Kill 1, deterministic: the sessions table is held, so the pool processes block inside their
        # transactions, each holding its own message and the group it took, none of it committed.
        name = "groups-kill-0"
        with database.connect() as holder:
            holder.execute(text("LOCK TABLE sessions IN EXCLUSIVE MODE"))
            workers.append(start_worker_process(worker_env(group_env, name), concurrency=2))
            wait_until(lambda: connections_waiting_for_lock(watch, name) >= 1, 60, "a worker blocked mid-group", workers[-1])
            poll(lambda: connections_waiting_for_lock(watch, name) >= 2, 3)  # its second process too, most likely
            figures["held at kill 1"] = 300 - queue_depth(broker_url, queue)
            workers[-1].kill()
            holder.rollback()
        # A group really was out of the queue when it died: its own message and 99 taken ones.
        assert figures["held at kill 1"] >= 100, figures
        assert stored() == 0
        assert back_in_queue("kill 1") == 0
        assert queue_depth(broker_url, queue) == 300

        # Kill 2: right after a commit, as the worker acknowledges the group (a race: the task's own
        # message is acknowledged by the worker's main process, a few ms later).
        name = "groups-kill-1"
        workers.append(start_worker_process(worker_env(group_env, name), concurrency=2))
        wait_until(lambda: committed(watch, name), 60, "a worker's commit", workers[-1], interval=0.001)
        workers[-1].kill()
        figures["stored at kill 2"] = len(stored_messages())
        assert figures["stored at kill 2"] >= 10, figures  # a group committed
        figures["stored yet back in the queue after kill 2"] = back_in_queue("kill 2")

        # Kill 3, a race: as soon as the next worker is seen inside a transaction.
        name = "groups-kill-2"
        workers.append(start_worker_process(worker_env(group_env, name), concurrency=2))
        wait_until(lambda: in_transaction(watch, name), 60, "a worker inside a transaction", workers[-1],
                   interval=0.002)
        workers[-1].kill()
        figures["stored at kill 3"] = len(stored_messages())
        figures["stored yet back in the queue after kill 3"] = back_in_queue("kill 3")
        assert figures["stored at kill 3"] < 300, "the backlog was gone before the third kill"

    # What a kill between the commit and the acknowledgement leaves behind, made certain: stored
    # messages in the queue again, to be grouped with new ones.
    again = stored_messages()[:30]
    for events in again:
        sender.send(events)
    before_last = stored()

    # A last worker finishes; every message the killed ones held comes back to it.
    last = start_worker_process(worker_env(group_env, "groups-last"), concurrency=2)
    wait_until(lambda: stored() >= 3000, 60, "all 3000 events stored", last, interval=0.25)
    wait_until(lambda: queue_depth(broker_url, queue) == 0, 20, "the queue drained", last)
    time.sleep(1)  # a duplicate or a late redelivery would show now

    counts = stored_counts(database, sender.application_id, ids)
    assert len(counts) == 3000 and set(counts.values()) == {1}, Counter(counts.values())
    per_session = session_counts(database, sessions)
    assert len(per_session) == 30
    assert all(count == stored_events for count, stored_events in per_session.values()), per_session
    assert sum(count for count, _ in per_session.values()) == 3000

    last.stop()  # a warm stop: anything it held unacknowledged would go back to the queue
    assert queue_depth(broker_url, queue) == 0
    # Its transactions held groups, and counted as new exactly the events not stored before it.
    sizes = [record["new_events"] for record in persisted_records(last)]
    assert sum(sizes) == 3000 - before_last, sizes
    assert max(sizes) > 100, sizes
    for worker in [*workers, last]:
        assert TASK_FAILED not in worker.log(), worker.log()[-4000:]
    print(f"\n{figures}; republished {len(again)} stored messages; last worker's new events per commit: {sizes}")


def test_a_group_the_database_fails_for_a_moment_goes_back_to_the_queue_and_is_stored_once(
    group_env, group_app, sender, database, start_worker_process
):
    broker_url, queue = group_env["CELERY_BROKER_URL"], group_env["EYE_QUEUE"]
    sessions = [str(uuid.uuid4()) for _ in range(10)]
    messages = [[pageview(sessions[(m + i) % len(sessions)]) for i in range(5)] for m in range(150)]
    for events in messages:
        sender.send(events)
    ids = [event["event_id"] for events in messages for event in events]
    name = "groups-transient"

    held = []
    with database.connect().execution_options(isolation_level="AUTOCOMMIT") as watch, database.connect() as holder:
        # The sessions table is held, so the worker blocks inside its group's transaction; cancelling
        # its statement there is a passing failure (SQLSTATE 57014): the group must go back, the task retry.
        holder.execute(text("LOCK TABLE sessions IN EXCLUSIVE MODE"))
        worker = start_worker_process(worker_env(group_env, name), concurrency=1)
        for _ in range(2):
            wait_until(lambda: connections_waiting_for_lock(watch, name) >= 1, 60, "the worker blocked mid-group", worker)
            held.append(150 - queue_depth(broker_url, queue))
            watch.execute(text("SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                               "WHERE application_name = :name AND wait_event_type = 'Lock'"), {"name": name})
            wait_until(lambda: connections_waiting_for_lock(watch, name) == 0, 10, "the cancelled statement ended", worker)
        assert held[0] >= 100, held  # a whole group was held when it failed
        holder.rollback()

    wait_until(lambda: len(stored_counts(database, sender.application_id, ids)) == 750, 60,
               "all 750 events stored", worker, interval=0.1)
    time.sleep(0.5)
    worker.stop()  # a warm stop: anything held unacknowledged goes back to the queue

    counts = stored_counts(database, sender.application_id, ids)
    assert set(counts.values()) == {1}, Counter(counts.values())
    assert all(count == stored_events == 75 for count, stored_events in session_counts(database, sessions).values())
    assert queue_depth(broker_url, queue) == 0
    log = worker.log()
    assert log.count("database unavailable") >= 2, log[-4000:]
    assert TASK_FAILED not in log and GROUP_REFUSED not in log
    assert sum(record["new_events"] for record in persisted_records(worker)) == 750


@pytest.mark.parametrize("position", ["first", "middle"])
def test_a_poison_message_in_a_group_is_set_aside_and_its_group_mates_stored_once(
    position, group_env, group_app, sender, database, start_worker_process
):
    broker_url = group_env["CELERY_BROKER_URL"]
    session = str(uuid.uuid4())
    good = [pageview(session) for _ in range(50)]
    # Its first event is fine; its second holds a NUL character, which no jsonb value can hold.
    mate = pageview(session)
    poison = pageview(session, data={"host": "groups.example.com", "path": "/", "note": "nul \x00 inside"})
    backlog = [[event] for event in good]
    backlog.insert(0 if position == "first" else 25, [mate, poison])
    for events in backlog:
        sender.send(events)
    assert queue_depth(broker_url, group_env["EYE_QUEUE"]) == 51

    worker = start_worker_process(worker_env(group_env, f"groups-poison-{position}"), concurrency=1)
    wanted = [event["event_id"] for event in [*good, mate]]
    wait_until(lambda: len(stored_counts(database, sender.application_id, wanted)) == 51
               and rejections(database, sender.application_id), 60, "good events stored, poison recorded", worker)
    time.sleep(0.5)
    worker.stop()  # a warm stop: a message still held unacknowledged would go back to the queue

    counts = stored_counts(database, sender.application_id, [*wanted, poison["event_id"]])
    assert counts == Counter({event_id: 1 for event_id in wanted}), "each good event once, the poison never"
    recorded = rejections(database, sender.application_id)
    assert [kind for kind, _ in recorded] == ["processing_failed"], recorded
    assert poison["event_id"] in recorded[0][1]
    assert session_counts(database, [session]) == {session: (51, 51)}
    assert queue_depth(broker_url, group_env["EYE_QUEUE"]) == 0

    log = worker.log()
    assert GROUP_REFUSED in log, "the poison was never inside a group"
    assert TASK_FAILED not in log
    records = persisted_records(worker)
    # The 50 good messages, each committed once, one by one once their group failed, all by the one
    # task that held the group (the poison's good mate is stored by the poison path, which logs no
    # "persisted").
    assert [(record["messages"], record["new_events"]) for record in records] == [(1, 1)] * 50, records
    assert len({record["task_id"] for record in records}) == 1, "the backlog was not one group"


def test_mouse_metrics_stay_exact_when_a_sessions_batches_are_spread_over_grouped_messages(
    group_env, group_app, sender, database, start_worker_process
):
    broker_url = group_env["CELERY_BROKER_URL"]
    rng = random.Random(14)
    t0 = time.time() * 1000 - 60_000
    sessions = [str(uuid.uuid4()) for _ in range(2)]
    paths: dict[tuple[str, str], set] = {}
    batches = []
    for session in sessions:
        for tab in ("a", "b"):
            points = [(t0 + i * 10.0, float(rng.randint(0, 800)), float(rng.randint(0, 600))) for i in range(240)]
            paths[(session, tab)] = set(points)
            chunks = [points[i:i + 8] for i in range(0, len(points), 8)]
            # Overlapping batches (a point sent in two events counts once) and a batch sent twice.
            chunks.append(points[100:116])
            for chunk in chunks:
                batches.append(mouse_move(session, chunk, tab))
            batches.append(batches[-3])
    rng.shuffle(batches)  # out of order, and each session's batches spread over many messages
    for start in range(0, len(batches), 2):
        sender.send(batches[start:start + 2])
    sent_messages = math.ceil(len(batches) / 2)
    assert queue_depth(broker_url, group_env["EYE_QUEUE"]) == sent_messages

    # Small groups, so a session's batches land in many transactions, several in each.
    worker = start_worker_process(worker_env(group_env, "groups-mouse", EYE_WORKER_GROUP_MESSAGES="7"),
                                  concurrency=2)
    distinct_ids = sorted({batch["event_id"] for batch in batches})
    wait_until(lambda: len(stored_counts(database, sender.application_id, distinct_ids)) == len(distinct_ids),
               60, "all mouse batches stored", worker)
    wait_until(lambda: sum(r["new_events"] for r in persisted_records(worker)) == len(distinct_ids), 10,
               "every new batch committed", worker)

    # Several transactions, each holding batches of several messages (2 events a message, at most 7 messages).
    sizes = [record["new_events"] for record in persisted_records(worker)]
    assert max(sizes) > 2 and max(sizes) <= 14 and len(sizes) > 5, sizes
    with database.connect() as connection:
        totals = {sid: (distance, points) for sid, distance, points in connection.execute(text(
            "SELECT session_id::text, distance, points FROM mouse_totals WHERE session_id = ANY(CAST(:s AS uuid[]))"),
            {"s": sessions})}
    for session in sessions:
        tab_paths = [sorted(paths[(session, tab)]) for tab in ("a", "b")]
        expected = math.fsum(math.hypot(b[1] - a[1], b[2] - a[2]) for path in tab_paths for a, b in pairwise(path))
        distance, points = totals[session]
        assert points == sum(len(path) for path in tab_paths)
        assert distance == pytest.approx(expected, rel=1e-9), (session, distance, expected)
    assert TASK_FAILED not in worker.log()


def _send_later(sender, messages: list[list[dict]], delay: float) -> threading.Thread:
    def send():
        time.sleep(delay)
        for events in messages:
            sender.send(events)
    thread = threading.Thread(target=send)
    thread.start()
    return thread


def test_a_waiting_group_takes_only_its_room_from_a_burst_and_leaves_the_rest_queued(group_env, sender):
    """The wait is a consumer whose prefetch is the group's room: a burst arriving during it fills the
    group, and the rest stays ready in the queue for any worker (none held, none lost)."""
    broker, queue = group_env["CELERY_BROKER_URL"], group_env["EYE_QUEUE"]
    sender.send([pageview(str(uuid.uuid4()))])  # queued before the task looks: taken by basic_get
    reader = QueueReader(broker, queue, limit=6, wait_seconds=3.0)
    own = build_message([build_part(sender.application_id, datetime.now(UTC), [pageview(str(uuid.uuid4()))], [])])
    burst = _send_later(sender, [[pageview(str(uuid.uuid4()))] for _ in range(10)], delay=0.3)
    started = time.monotonic()
    try:
        group = reader.gather(own)
        burst.join()
        # Full (5 taken + its own) long before the 3 s wait ended: it stopped waiting then.
        assert len(group.taken) == 5 and time.monotonic() - started < 2.5
        group.acknowledge()
        assert poll(lambda: queue_depth(broker, queue) == 6, 5)  # 11 sent, 5 taken
    finally:
        reader.close()
    assert queue_depth(broker, queue) == 6  # closing the reader gave nothing back twice, held nothing


def test_a_waiting_group_ends_at_its_deadline_and_stops_at_a_message_of_another_task(group_env, sender):
    broker, queue = group_env["CELERY_BROKER_URL"], group_env["EYE_QUEUE"]
    sender.send([pageview(str(uuid.uuid4()))])  # makes the queue; taken by the first gather below
    reader = QueueReader(broker, queue, limit=50, wait_seconds=0.6)
    own = build_message([build_part(sender.application_id, datetime.now(UTC), [pageview(str(uuid.uuid4()))], [])])
    try:
        burst = _send_later(sender, [[pageview(str(uuid.uuid4()))] for _ in range(2)], delay=0.1)
        started = time.monotonic()
        group = reader.gather(own)
        waited = time.monotonic() - started
        burst.join()
        assert len(group.taken) == 3 and 0.55 <= waited < 1.5, (len(group.taken), waited)
        group.acknowledge()

        # Another task's message comes first: left for Celery's own consumer, and nothing after it taken.
        sender.celery.send_task("tasks.some_other_task", args=[])
        sender.send([pageview(str(uuid.uuid4()))])
        group = reader.gather(own)
        assert group.taken == []
        assert poll(lambda: queue_depth(broker, queue) == 2, 5)
    finally:
        reader.close()
