"""The ingestion spine on the real PostgreSQL and RabbitMQ, with a real worker."""

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Event, Rejection, Session, SessionApplication
from tests.fixtures.apps import wait_for

VALID = ["pageview", "cta_click", "form_submit"]


def post(client, key, body, path="/api/v1/events"):
    return client.post(path, data=json.dumps(body), headers={"X-API-Key": key},
                       content_type="application/json")


def fresh_session(event: dict) -> dict:
    return {**event, "session_id": str(uuid.uuid4())}


def stored_events(app, session_id):
    with app.app_context():
        return db.session.execute(
            select(Event).where(Event.session_id == uuid.UUID(session_id))
            .order_by(Event.timestamp, Event.received_at, Event.id)
        ).scalars().all()


def session_row(app, session_id):
    with app.app_context():
        return db.session.get(Session, uuid.UUID(session_id))


def rejections_of(app, application_name):
    from app.models import Application

    with app.app_context():
        return db.session.execute(
            select(Rejection).join(Application, Rejection.application_id == Application.id)
            .where(Application.name == application_name)
        ).scalars().all()


def test_seed_events_one_by_one_are_stored_once_in_order(pg_app, pg_client, pg_key, sample):
    key = pg_key("ingest")
    session_id = str(uuid.uuid4())
    # Distinct timestamps, sent in reverse, so the stored order is the events' order, not arrival's.
    events = []
    for second, name in zip((3, 2, 1), VALID, strict=True):
        events.append({**sample(name), "session_id": session_id,
                       "timestamp": f"2021-01-01 09:15:2{second}.000000"})
    ids = []
    for event in events:
        response = post(pg_client, key, event)
        assert response.status_code == 202, response.json
        ids.append(response.json["event_id"])

    stored = wait_for(lambda: len(stored_events(pg_app, session_id)) == 3 and stored_events(pg_app, session_id))
    assert [e.name for e in stored] == ["submit", "cta click", "pageview"]
    assert sorted(str(e.event_id) for e in stored) == sorted(ids)
    row = session_row(pg_app, session_id)
    assert row.event_count == 3
    assert row.first_event_at.isoformat() == "2021-01-01T09:15:21+00:00"
    assert row.last_event_at.isoformat() == "2021-01-01T09:15:23+00:00"


def test_seed_events_as_a_batch_and_resent_are_stored_once(pg_app, pg_client, pg_key, sample):
    key = pg_key("ingest")
    session_id = str(uuid.uuid4())
    events = [{**sample(n), "session_id": session_id, "event_id": str(uuid.uuid4())} for n in VALID]
    for _ in range(2):  # the second send is a client retry: nothing new may be stored
        response = post(pg_client, key, {"events": events}, "/api/v1/events/batch")
        assert response.status_code == 202
        assert response.json == {"accepted": 3, "event_ids": [e["event_id"] for e in events], "rejected": []}

    wait_for(lambda: len(stored_events(pg_app, session_id)) == 3)
    # Let the retry's message be processed too before checking it added nothing.
    marker = {**sample("pageview"), "session_id": session_id, "timestamp": "2021-01-02 00:00:00"}
    post(pg_client, key, marker)
    wait_for(lambda: len(stored_events(pg_app, session_id)) == 4)
    assert session_row(pg_app, session_id).event_count == 4


@pytest.mark.parametrize("name,status,kind", [
    ("bad_future_timestamp", 422, "future_timestamp"),
    ("bad_unexpected_field", 422, "invalid_payload"),
    ("bad_wrong_types", 422, "invalid_event"),
    ("bad_trailing_comma", 400, "malformed_json"),
])
def test_bad_samples_get_a_json_error_and_are_recorded(pg_app, pg_client, pg_key, sample, name, status, kind):
    application = f"app-{uuid.uuid4().hex[:8]}"
    key = pg_key("ingest", application=application)
    response = pg_client.post("/api/v1/events", data=sample(name, raw=True),
                              headers={"X-API-Key": key}, content_type="application/json")
    assert response.status_code == status
    body = response.json
    assert body["code"] == status and body["message"]
    recorded = wait_for(lambda: rejections_of(pg_app, application))
    assert [r.kind for r in recorded] == [kind]
    assert recorded[0].errors
    if name == "bad_wrong_types":
        assert set(body["errors"]) >= {"session_id", "timestamp", "data"}
        assert set(body["errors"]["data"]) == {"host", "path", "form"}
    if name == "bad_unexpected_field":
        assert body["errors"] == {"data": {"color": ["Unknown field."]}}
    assert "session_id" in recorded[0].raw  # the raw item, as received


def test_same_event_id_sent_50_times_concurrently_is_one_row(pg_app, pg_client, pg_key, sample):
    key = pg_key("ingest")
    event = {**fresh_session(sample("pageview")), "event_id": str(uuid.uuid4())}

    def send(_):
        return post(pg_app.test_client(), key, event).status_code

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(send, range(50))) == {202}
    wait_for(lambda: stored_events(pg_app, event["session_id"]))
    # Every one of the 50 messages must have been processed before counting.
    marker = {**sample("cta_click"), "session_id": event["session_id"], "timestamp": "2022-01-01 00:00:00"}
    post(pg_client, key, marker)
    wait_for(lambda: len(stored_events(pg_app, event["session_id"])) >= 2, timeout=30)
    with pg_app.app_context():
        count = db.session.scalar(select(func.count()).select_from(Event)
                                  .where(Event.event_id == uuid.UUID(event["event_id"])))
    assert count == 1
    assert session_row(pg_app, event["session_id"]).event_count == 2


def test_two_applications_on_one_session_concurrently(pg_app, pg_key, sample):
    session_id = str(uuid.uuid4())
    key_a, key_b = pg_key("ingest"), pg_key("ingest")
    per_app = 40

    def send(args):
        key, i = args
        event = {**sample("pageview"), "session_id": session_id, "timestamp": f"2021-01-01 10:00:{i:02d}"}
        return post(pg_app.test_client(), key, event).status_code

    jobs = [(key, i) for i in range(per_app) for key in (key_a, key_b)]
    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(send, jobs)) == {202}
    wait_for(lambda: len(stored_events(pg_app, session_id)) == 2 * per_app, timeout=30)
    wait_for(lambda: session_row(pg_app, session_id).event_count == 2 * per_app, timeout=10)
    row = session_row(pg_app, session_id)
    assert row.first_event_at.isoformat() == "2021-01-01T10:00:00+00:00"
    assert row.last_event_at.isoformat() == f"2021-01-01T10:00:{per_app - 1:02d}+00:00"
    with pg_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Session)
                                 .where(Session.session_id == uuid.UUID(session_id))) == 1
        assert db.session.scalar(select(func.count()).select_from(SessionApplication)
                                 .where(SessionApplication.session_id == uuid.UUID(session_id))) == 2
