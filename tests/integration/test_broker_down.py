"""With the broker unreachable the API answers 503 + Retry-After quickly, and accepts nothing."""

import json
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Event
from tests.fixtures.apps import make_key_factory, migrated_app


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_broker():
    """A TCP server that accepts connections and never says a word (a hung or black-holed broker)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(50)
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


@pytest.fixture
def app_with_broker(service_env):
    """Factory: the app on the real PostgreSQL with its broker URL pointing at the given port."""
    def make(port: int):
        return migrated_app(**{**service_env, "CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{port}//",
                               "SOCKETIO_MESSAGE_QUEUE": service_env["CELERY_BROKER_URL"]})
    return make


@pytest.mark.parametrize("broker", ["refused", "silent"])
def test_unreachable_broker_gives_503_with_retry_after_fast(app_with_broker, silent_broker, sample, broker):
    port = closed_port() if broker == "refused" else silent_broker
    app = app_with_broker(port)
    key = make_key_factory(app)("ingest")
    client = app.test_client()
    event = {**sample("pageview"), "session_id": str(uuid.uuid4())}

    for path, body in (("/api/v1/events", event), ("/api/v1/events/batch", {"events": [event]})):
        started = time.monotonic()
        response = client.post(path, data=json.dumps(body), headers={"X-API-Key": key},
                               content_type="application/json")
        elapsed = time.monotonic() - started
        assert response.status_code == 503, response.json
        assert elapsed < 2.0
        assert int(response.headers["Retry-After"]) >= 1
        assert response.json["code"] == 503 and "retry" in response.json["message"]

    # Concurrent requests queue behind one publish that is timing out: each still answers in time.
    def timed_post(_):
        started = time.monotonic()
        answer = app.test_client().post("/api/v1/events", data=json.dumps(event), headers={"X-API-Key": key},
                                        content_type="application/json")
        return answer.status_code, time.monotonic() - started

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(timed_post, range(16)))
    assert {status for status, _ in answers} == {503}
    assert max(elapsed for _, elapsed in answers) < 2.0

    readiness = client.get("/readyz")
    assert readiness.status_code == 503
    assert "broker" in readiness.json["status"] and readiness.json["checks"]["database"] == "ok"

    time.sleep(0.5)  # nothing can arrive, but give a stray publish the chance to prove us wrong
    with app.app_context():
        stored = db.session.scalar(select(func.count()).select_from(Event)
                                   .where(Event.session_id == uuid.UUID(event["session_id"])))
    assert stored == 0
