"""The web process's publisher on RabbitMQ: Celery's own task message, on a confirm channel it keeps."""

import json
import socket
import uuid

import pytest
from kombu import Connection

from app.messages import PERSIST_EVENTS_TASK, parts_of
from tests.fixtures.apps import make_key_factory, migrated_app
from tests.fixtures.services import delete_broker_entities


@pytest.fixture
def quiet_queue_app(service_env):
    """The app on the real services with an ingest queue of its own that no worker consumes."""
    queue = f"eye_test_publisher_{uuid.uuid4().hex[:10]}"
    app = migrated_app(**{**service_env, "EYE_QUEUE": queue})
    yield app, queue
    publisher = app.extensions.get("eye_publisher")
    if publisher is not None and publisher._sender is not None:
        publisher._sender.close()
    app.extensions["celery"].close()
    delete_broker_entities(service_env["CELERY_BROKER_URL"], [queue], [queue])


def take_all(broker_url: str, queue: str) -> list:
    """Every message waiting in `queue`, taken off it."""
    taken = []
    with Connection(broker_url, connect_timeout=2) as connection:
        channel = connection.default_channel
        while (message := channel.basic_get(queue, no_ack=True)) is not None:
            taken.append(message)
    return taken


def test_the_message_is_a_persistent_celery_task_and_a_dropped_connection_is_replaced(quiet_queue_app, sample,
                                                                                        service_env):
    app, queue = quiet_queue_app
    key = make_key_factory(app)("ingest")
    client = app.test_client()
    sent = []

    def post() -> None:
        event = {**sample("pageview"), "session_id": str(uuid.uuid4()), "event_id": str(uuid.uuid4())}
        response = client.post("/api/v1/events", data=json.dumps(event), headers={"X-API-Key": key},
                               content_type="application/json")
        assert response.status_code == 202, response.json
        sent.append(event["event_id"])

    post()
    sender = app.extensions["eye_publisher"]._sender
    assert sender is not None, "on RabbitMQ the publisher keeps a confirm channel of its own"
    # The broker drops the kept connection while it is idle (a restart, a network cut, a heartbeat):
    # the next publish finds it dead, opens a new one, and the client still gets its 202.
    sender._connection.connection.sock.shutdown(socket.SHUT_RDWR)
    post()
    post()

    messages = take_all(service_env["CELERY_BROKER_URL"], queue)
    assert len(messages) == 3
    for message, event_id in zip(messages, sent, strict=True):
        # What a Celery worker reads: protocol 2 headers, a persistent message, our JSON body.
        assert message.headers["task"] == PERSIST_EVENTS_TASK
        assert message.headers["id"] == message.properties["correlation_id"]
        assert message.headers["argsrepr"] == "<1 parts, 1 events>"
        assert message.properties["delivery_mode"] == 2
        assert message.content_type == "application/x-eye-json"
        args, kwargs, embed = json.loads(message.body)
        assert kwargs == {} and "callbacks" in embed
        [part] = parts_of(args[0])
        assert [event["event_id"] for event in part["events"]] == [event_id]
