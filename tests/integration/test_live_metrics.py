"""Live mouse metrics end to end: REST ingest, RabbitMQ, a real worker, PostgreSQL, and the real
web process (gunicorn) whose Socket.IO server hears the worker through the RabbitMQ message queue,
watched by real Socket.IO clients.

Flask-SocketIO's test client refuses a server that has a message queue, and the worker emits
through that queue: so the web process is started as in production and watched over the network.
"""

import socket
import time
import uuid
from pathlib import Path

import pytest
import requests
import socketio
from flask_socketio import SocketIO

from app.dashboard.broadcast import MOUSE_METRICS_EVENT, session_room
from app.dashboard.live_channel import LiveChannel
from tests.fixtures.apps import wait_for
from tests.fixtures.processes import BIN, ROOT, ServiceProcess, free_port, wait_for_http
from tests.fixtures.services import delete_broker_entities

T0 = 1_700_000_000_000


@pytest.fixture(scope="module")
def live_url(service_env, pg_app, broker_url, tmp_path_factory):
    """The base URL of the service run as in production: a gunicorn web process and a celery worker.

    They use a queue of their own: the in-process test worker (pg_worker) runs its tasks in
    whichever app was created last, which another test may have made on the embedded default.
    """
    queue = f"{service_env['EYE_QUEUE']}_live"
    # PYTHONPATH: the processes run this tree's code, whatever the venv's editable install points at.
    env = {**service_env, "EYE_QUEUE": queue, "PYTHONPATH": str(ROOT / "src")}
    logs = Path(tmp_path_factory.mktemp("live"))
    port = free_port()
    worker = ServiceProcess([str(BIN / "celery"), "-A", "tasks.worker", "worker", "--concurrency", "2",
                             "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", "live@%h"],
                            env, logs / "worker.log")
    web = ServiceProcess([str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--worker-class", "gthread",
                          "--workers", "1", "--threads", "32", "app:create_app()"], env, logs / "web.log")
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url + "/healthz", web)
    yield url
    web.stop()
    worker.stop()
    delete_broker_entities(broker_url, [queue], [queue])


class Watcher:
    """A Socket.IO client that records the `mouse_metrics` it receives."""

    def __init__(self, url: str, auth: dict):
        self.metrics: list[dict] = []
        self.probes: list[dict] = []
        self.client = socketio.Client(reconnection=False)
        self.client.on("mouse_metrics", self.metrics.append)
        self.client.on("probe", self.probes.append)
        self.client.connect(url, auth=auth, transports=["websocket"], wait_timeout=5)

    def call(self, event: str, data: dict) -> dict:
        return self.client.call(event, data, timeout=5)

    def of_session(self, session_id: str) -> list[dict]:
        return [m for m in self.metrics if m["session_id"] == session_id]


@pytest.fixture
def watch(live_url):
    """Factory: a connected Watcher with the given Socket.IO auth (disconnected afterwards)."""
    watchers = []

    def connect(auth: dict) -> Watcher:
        watcher = Watcher(live_url, auth)
        watchers.append(watcher)
        return watcher

    yield connect
    for watcher in watchers:
        watcher.client.disconnect()


@pytest.fixture
def wait_listening(pg_app):
    """Wait until the server hears the message queue: a probe emitted into `room` reaches `watcher`."""
    emitter = SocketIO(message_queue=pg_app.config["SOCKETIO_MESSAGE_QUEUE"],
                       channel=pg_app.config["EYE_SOCKETIO_CHANNEL"])

    def wait(watcher: Watcher, room: str) -> None:
        deadline = time.monotonic() + 15
        while not watcher.probes:
            # The server binds its queue in the background after the first connection.
            assert time.monotonic() < deadline, "the Socket.IO server never heard the message queue"
            emitter.emit("probe", {}, to=room)
            time.sleep(0.2)

    return wait


@pytest.fixture
def dashboard_grant(live_url):
    """Factory: a fresh dashboard grant {token, session_id, expires_in} from POST /dashboard/token."""

    def grant() -> dict:
        response = requests.post(f"{live_url}/dashboard/token", timeout=5)
        assert response.status_code == 200
        return response.json()

    return grant


def post_moves(url: str, token: str, session_id: str, points) -> None:
    data = {"points": [{"t": t, "x": x, "y": y} for t, x, y in points], "viewport": {"w": 1280, "h": 720}}
    event = {"session_id": session_id, "category": "mouse", "name": "move", "data": data,
             "timestamp": "2023-11-14T22:13:20.030Z"}
    response = requests.post(f"{url}/api/v1/events", json=event, headers={"Authorization": f"Bearer {token}"},
                             timeout=5)
    assert response.status_code == 202, response.text


def get(url: str, path: str, headers: dict | None = None) -> requests.Response:
    return requests.get(f"{url}{path}", headers=headers or {}, timeout=5)


def sample_points(sample):
    return [(p["t"], p["x"], p["y"]) for p in sample("mouse_move")["data"]["points"]]


def test_a_token_client_gets_its_sessions_metrics_and_nothing_of_another(
        live_url, watch, wait_listening, dashboard_grant, sample):
    mine, other = dashboard_grant(), dashboard_grant()
    me = watch({"token": mine["token"]})
    them = watch({"token": other["token"]})
    wait_listening(me, session_room(mine["session_id"]))

    post_moves(live_url, mine["token"], mine["session_id"], sample_points(sample))
    post_moves(live_url, other["token"], other["session_id"], [(T0, 0, 0), (T0 + 10, 30, 40)])

    wait_for(lambda: me.metrics and them.metrics)
    assert me.metrics == [{
        "session_id": mine["session_id"], "t": T0 + 30, "distance": 15.0, "velocity": pytest.approx(500),
        "peak_velocity": pytest.approx(1000), "points": 4,
    }]
    assert [m["distance"] for m in them.metrics] == [50.0]


def workers_channel(app) -> LiveChannel:
    """The channel's side a worker emits on (app/dashboard/broadcast.py makes it the same way)."""
    return LiveChannel(app.config["SOCKETIO_MESSAGE_QUEUE"], channel=app.config["EYE_SOCKETIO_CHANNEL"], write_only=True)


def live_metric(session_id: str, points: int, distance: float) -> dict:
    """A `mouse_metrics` message whose t and points tell it apart from its neighbours."""
    return {"session_id": session_id, "t": T0 + points, "distance": distance, "velocity": 0.0, "peak_velocity": 0.0,
            "points": points}


def test_one_grouped_message_reaches_each_room_its_metrics_in_order(live_url, watch, wait_listening, dashboard_grant,
                                                                   pg_app):
    """A worker sends the metrics of one transaction as one message; the web process unpacks it."""
    first, second, bystander = dashboard_grant(), dashboard_grant(), dashboard_grant()
    watchers = [watch({"token": grant["token"]}) for grant in (first, second, bystander)]
    for watcher, grant in zip(watchers, (first, second, bystander), strict=True):
        wait_listening(watcher, session_room(grant["session_id"]))
    channel = workers_channel(pg_app)
    metrics = [live_metric(grant["session_id"], i, distance=float(i))
               for i, grant in enumerate([first, second, first, first, second])]
    channel.emit_many(MOUSE_METRICS_EVENT, [(metric, session_room(metric["session_id"])) for metric in metrics])
    channel.emit_many(MOUSE_METRICS_EVENT, [])  # nothing to say: nothing sent

    wait_for(lambda: len(watchers[0].metrics) == 3 and len(watchers[1].metrics) == 2)
    assert [m["t"] for m in watchers[0].metrics] == [T0, T0 + 2, T0 + 3]
    assert watchers[1].metrics == [metrics[1], metrics[4]]
    time.sleep(0.3)
    assert watchers[2].metrics == [] and len(watchers[0].metrics) == 3


def test_the_workers_side_of_the_channel_publishes_again_after_its_connection_drops(
        live_url, watch, wait_listening, dashboard_grant, pg_app):
    """It keeps one producer for its connection: a connection lost under it (a broker node gone,
    a network cut) must not silence the live chart; the next message reconnects."""
    grant = dashboard_grant()
    room = session_room(grant["session_id"])
    watcher = watch({"token": grant["token"]})
    wait_listening(watcher, room)
    channel = workers_channel(pg_app)

    def metric(points: int) -> dict:
        return live_metric(grant["session_id"], points, distance=1.0)

    channel.emit_many(MOUSE_METRICS_EVENT, [(metric(1), room)])
    wait_for(lambda: len(watcher.metrics) == 1)
    dropped = channel.publisher_connection.connection  # the AMQP connection the kept producer uses
    dropped.sock.shutdown(socket.SHUT_RDWR)
    channel.emit_many(MOUSE_METRICS_EVENT, [(metric(2), room)])
    channel.emit_many(MOUSE_METRICS_EVENT, [(metric(3), room)])
    wait_for(lambda: len(watcher.metrics) == 3)
    assert [m["points"] for m in watcher.metrics] == [1, 2, 3]
    assert channel.publisher_connection.connection is not dropped  # it did reconnect


def test_a_token_may_not_post_or_watch_another_session(live_url, watch, dashboard_grant):
    mine, other = dashboard_grant(), dashboard_grant()
    me = watch({"token": mine["token"]})
    assert me.call("subscribe", {"session_id": mine["session_id"]}) == {"ok": True}
    refused = me.call("subscribe", {"session_id": other["session_id"]})
    assert refused["ok"] is False and "own session" in refused["error"]
    assert me.call("subscribe", {"session_id": "not-a-uuid"})["ok"] is False
    response = requests.post(
        f"{live_url}/api/v1/events", headers={"Authorization": f"Bearer {mine['token']}"}, timeout=5,
        json={"session_id": other["session_id"], "category": "mouse", "name": "move",
              "data": {"points": [{"t": T0, "x": 1, "y": 2}]}, "timestamp": "2023-11-14T22:13:20Z"},
    )
    assert response.status_code == 403


@pytest.mark.parametrize("auth", [
    None,
    {},
    {"token": "forged.token.value"},
    {"api_key": "eye_0123456789_not-a-real-key"},
    "ingest-only key",
])
def test_a_connection_without_valid_credentials_is_refused(live_url, watch, pg_key, auth):
    if auth == "ingest-only key":
        auth = {"api_key": pg_key("ingest")}
    with pytest.raises(socketio.exceptions.ConnectionError):
        watch(auth)


def test_a_read_key_may_watch_any_session_until_it_unsubscribes(
        live_url, watch, wait_listening, dashboard_grant, pg_key):
    grant = dashboard_grant()
    session_id = grant["session_id"]
    reader = watch({"api_key": pg_key("read")})
    owner = watch({"token": grant["token"]})
    assert reader.call("subscribe", {"session_id": session_id}) == {"ok": True}
    wait_listening(reader, session_room(session_id))

    post_moves(live_url, grant["token"], session_id, [(T0, 0, 0), (T0 + 10, 3, 4)])
    wait_for(lambda: reader.of_session(session_id))
    assert reader.of_session(session_id)[0]["distance"] == 5.0

    assert reader.call("unsubscribe", {"session_id": session_id}) == {"ok": True}
    post_moves(live_url, grant["token"], session_id, [(T0 + 20, 6, 8)])
    wait_for(lambda: len(owner.of_session(session_id)) == 2)  # the owner saw the second batch…
    assert len(reader.of_session(session_id)) == 1  # …the reader, gone, did not


def test_get_mouse_metrics_returns_the_series_a_page_at_a_time(live_url, dashboard_grant, pg_key, sample):
    grant = dashboard_grant()
    read = {"X-API-Key": pg_key("read")}
    path = f"/api/v1/sessions/{grant['session_id']}/mouse-metrics"

    def series(count: int):
        response = get(live_url, path, read)
        return response.status_code == 200 and len(response.json()["items"]) == count and response.json()["items"]

    # One batch after the other, so that the series' order is known.
    post_moves(live_url, grant["token"], grant["session_id"], sample_points(sample))
    wait_for(lambda: series(1))
    post_moves(live_url, grant["token"], grant["session_id"], [(T0 + 40, 109, 122)])
    items = wait_for(lambda: series(2))
    assert items == [
        {"t": T0 + 30, "distance": 15.0, "velocity": pytest.approx(500), "peak_velocity": pytest.approx(1000),
         "points": 4},
        {"t": T0 + 40, "distance": 25.0, "velocity": 0.0, "peak_velocity": pytest.approx(1000), "points": 5},
    ]

    first = get(live_url, f"{path}?limit=1", read).json()
    assert first["items"] == items[:1] and first["next_cursor"]
    second = get(live_url, f"{path}?limit=1&cursor={first['next_cursor']}", read).json()
    assert second == {"items": items[1:], "next_cursor": None}


def test_get_mouse_metrics_answers_errors_as_the_contract_says(live_url, pg_key, dashboard_grant, sample):
    read = {"X-API-Key": pg_key("read")}
    unknown = str(uuid.uuid4())
    path = f"/api/v1/sessions/{unknown}/mouse-metrics"
    assert get(live_url, path, read).status_code == 404
    assert get(live_url, path).status_code == 401
    assert get(live_url, path, {"X-API-Key": pg_key("ingest")}).status_code == 403
    assert get(live_url, path, {"Authorization": f"Bearer {dashboard_grant()['token']}"}).status_code == 403
    assert get(live_url, "/api/v1/sessions/nope/mouse-metrics", read).status_code == 422
    assert get(live_url, f"{path}?limit=1001", read).status_code == 422
    assert get(live_url, f"{path}?cursor=forged", read).status_code == 400

    # A session known from other events, without mouse data yet: 200 and no items.
    pageview = {**sample("pageview"), "session_id": unknown}
    response = requests.post(f"{live_url}/api/v1/events", json=pageview, headers={"X-API-Key": pg_key("ingest")},
                             timeout=5)
    assert response.status_code == 202
    page = wait_for(lambda: (r := get(live_url, path, read)).status_code == 200 and r.json())
    assert page == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("caller", ["none", "unknown", "revoked", "ingest", "read", "ingest+read", "admin"])
def test_socket_access_matrix(live_url, watch, pg_app, pg_key, caller):
    """Section 2 × the Socket.IO door: only a key with the read scope may connect and subscribe."""
    from app.identity import keys

    if caller == "none":
        auth = None
    elif caller == "unknown":
        auth = {"api_key": "eye_0000000000_" + "y" * 43}
    elif caller == "revoked":
        key = pg_key("read")
        watch({"api_key": key})  # known, hence cached, by the web process before it is revoked
        with pg_app.app_context():
            keys.revoke_key(key.split("_")[1])
        time.sleep(2.5)  # past the web process's key cache: revocation holds everywhere within 5 s
        auth = {"api_key": key}
    else:
        auth = {"api_key": pg_key(*caller.split("+"))}
    if "read" not in caller.split("+"):
        with pytest.raises(socketio.exceptions.ConnectionError):
            watch(auth)
        return
    watcher = watch(auth)
    assert watcher.call("subscribe", {"session_id": str(uuid.uuid4())}) == {"ok": True}
    assert watcher.call("subscribe", {"session_id": "not-a-uuid"})["ok"] is False


def test_a_revoked_key_stops_working_within_five_seconds_in_another_process(live_url, pg_app, pg_key):
    from app.identity import keys

    key = pg_key("read")
    assert get(live_url, "/api/v1/event-types", {"X-API-Key": key}).status_code == 200  # now cached there
    with pg_app.app_context():  # revoked here, in another process than the web's
        keys.revoke_key(key.split("_")[1])
    revoked_at = time.monotonic()
    wait_for(lambda: get(live_url, "/api/v1/event-types", {"X-API-Key": key}).status_code == 401, timeout=5)
    assert time.monotonic() - revoked_at < 5
