"""Quorum queues on the real RabbitMQ: the default declaration, the readiness probe, and moving an
existing classic queue to a quorum queue with `flask broker move-to-quorum` without losing a message.

(Losing a node of a three-node cluster is tests/faults/test_broker_cluster.py.)
"""

import json
import time
import uuid

import pytest
from amqp.exceptions import PreconditionFailed
from kombu import Connection
from sqlalchemy import text

from app.broker.queue_move import HOLDING_SUFFIX, queue_kind
from app.extensions import db
from tests.fixtures.apps import make_key_factory, migrated_app, wait_for
from tests.fixtures.services import delete_broker_entities

EVENTS_PER_REQUEST = 3
REQUESTS = 5


@pytest.fixture
def own_queue(service_env, broker_url):
    """The run's database with an ingest queue and Socket.IO channel of this test's own."""
    name = f"eye_test_qq_{uuid.uuid4().hex[:10]}"
    env = {**service_env, "EYE_QUEUE": name, "EYE_SOCKETIO_CHANNEL": f"{name}_sio"}
    yield env
    delete_broker_entities(broker_url, [name, name + HOLDING_SUFFIX, f"{name}.maintenance{HOLDING_SUFFIX}"],
                           [name, env["EYE_SOCKETIO_CHANNEL"]])


def send(app, key, event: dict) -> list[str]:
    """One batch of EVENTS_PER_REQUEST copies of `event`, each with an event_id of its own."""
    ids = [str(uuid.uuid4()) for _ in range(EVENTS_PER_REQUEST)]
    body = {"events": [{**event, "event_id": event_id} for event_id in ids]}
    answer = app.test_client().post("/api/v1/events/batch", data=json.dumps(body), content_type="application/json",
                                    headers={"X-API-Key": key})
    assert answer.status_code == 202, answer.json
    return ids


def depth(broker_url: str, name: str) -> int:
    with Connection(broker_url) as connection:
        return connection.channel().queue_declare(name, passive=True).message_count


def stored(app, session_id: str) -> list[str]:
    with app.app_context():
        return list(db.session.execute(text("SELECT event_id::text FROM events WHERE session_id = :s"),
                                       {"s": session_id}).scalars())


def test_the_queues_are_quorum_queues_by_default_and_ready_means_a_confirmed_probe(own_queue, broker_url):
    app = migrated_app(**own_queue)
    assert app.config["EYE_QUEUE_TYPE"] == "quorum"
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 200, ready.json
    with Connection(broker_url) as connection:
        assert queue_kind(connection, own_queue["EYE_QUEUE"]) == "quorum"
        # The probe's queue: a quorum queue too (declared as classic, it refuses), holding the last probe only.
        with pytest.raises(PreconditionFailed):
            connection.channel().queue_declare(f"{own_queue['EYE_QUEUE']}.readiness", durable=True, auto_delete=False,
                                               arguments={"x-queue-type": "classic", "x-max-length": 1})
    app.test_client().get("/readyz")
    probes = f"{own_queue['EYE_QUEUE']}.readiness"
    assert depth(broker_url, probes) == 1

    # The answer is kept a second per process: asking again at once sends no probe (its queue, removed
    # here, stays absent); a second later one is sent.
    with Connection(broker_url) as connection:
        connection.channel().queue_delete(probes)
        assert app.test_client().get("/readyz").status_code == 200
        assert queue_kind(connection, probes) == "absent"
        time.sleep(app.config["EYE_READINESS_CACHE_SECONDS"])
        assert app.test_client().get("/readyz").status_code == 200
        assert depth(broker_url, probes) == 1  # declared again, holding the new probe


def test_a_classic_queue_moves_to_quorum_with_every_message(own_queue, broker_url, sample, start_worker_process):
    name = own_queue["EYE_QUEUE"]
    before = migrated_app(**own_queue, EYE_QUEUE_TYPE="classic")
    application = f"qq-{uuid.uuid4().hex[:8]}"
    key = make_key_factory(before)("ingest", application=application)
    session_id = str(uuid.uuid4())
    event = {**sample("pageview"), "session_id": session_id}
    accepted = [event_id for _ in range(REQUESTS) for event_id in send(before, key, event)]
    with Connection(broker_url) as connection:
        assert queue_kind(connection, name) == "classic"
    queued = depth(broker_url, name)
    assert queued >= 1

    # EYE_QUEUE_TYPE: quorum, the default; readiness asked afresh each time (no cached answer)
    after = migrated_app(**own_queue, EYE_READINESS_CACHE_SECONDS="0")
    # Started on the old queue without the move: refused, and said why, never a 202 it cannot keep.
    ready = after.test_client().get("/readyz")
    assert ready.status_code == 503 and ready.json["checks"]["broker"] == "queue_type_mismatch"
    refused = after.test_client().post("/api/v1/events", data=json.dumps(event),
                                       content_type="application/json", headers={"X-API-Key": key})
    assert refused.status_code == 503 and refused.headers["Retry-After"]

    # A worker still attached: refused, nothing changed.
    with Connection(broker_url) as holder:
        channel = holder.channel()
        channel.basic_consume(name, callback=lambda message: None)
        runner = after.test_cli_runner()
        busy = runner.invoke(args=["broker", "move-to-quorum"])
        assert busy.exit_code != 0 and "consumer" in busy.output
    assert depth(broker_url, name) == queued

    moved = after.test_cli_runner().invoke(args=["broker", "move-to-quorum"])
    assert moved.exit_code == 0, moved.output
    assert f"{name}: moved from a classic queue with its {queued} message(s)" in moved.output
    with Connection(broker_url) as connection:
        assert queue_kind(connection, name) == "quorum"
        assert queue_kind(connection, name + HOLDING_SUFFIX) == "absent"
    assert depth(broker_url, name) == queued

    again = after.test_cli_runner().invoke(args=["broker", "move-to-quorum"])
    assert again.exit_code == 0 and f"{name}: already a quorum queue" in again.output

    assert after.test_client().get("/readyz").status_code == 200
    accepted += send(after, key, event)  # the API takes events again, into the quorum queue
    # A worker process of its own (an in-process test worker would share this process's node name,
    # and so the exclusive control queue, with the session's test worker: it could never start).
    worker = start_worker_process(own_queue)
    wait_for(lambda: len(stored(after, session_id)) >= len(accepted), timeout=60)
    time.sleep(1)  # a duplicate would show now
    worker.stop()
    rows = stored(after, session_id)
    assert sorted(rows) == sorted(accepted)  # every event once: none lost, none twice
    for app in (before, after):
        with app.app_context():
            db.engine.dispose()
