"""The ingest door on the embedded default: status codes, per-item verdicts, size and type rules."""

import json
import uuid

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Event, Rejection
from tests.fixtures.apps import wait_for


@pytest.fixture
def key(embedded_key):
    """An ingest + read key on the embedded app."""
    return embedded_key("ingest", "read")


@pytest.fixture
def send(embedded_client, key):
    """POST a body (dict → JSON, bytes as they are) to an ingest route."""
    def post(body, path="/api/v1/events", content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body)
        return embedded_client.post(path, data=data, headers={"X-API-Key": key}, content_type=content_type)
    return post


def rejections(app):
    with app.app_context():
        return db.session.scalars(select(Rejection).order_by(Rejection.received_at)).all()


def test_valid_samples_are_accepted_and_persisted(embedded_app, embedded_worker, send, sample):
    ids = [send(sample(name)).json["event_id"] for name in ("pageview", "cta_click", "form_submit", "mouse_move")]
    with embedded_app.app_context():
        stored = wait_for(lambda: len(db.session.scalars(select(Event)).all()) == 4
                          and db.session.scalars(select(Event)).all())
        assert sorted(str(e.event_id) for e in stored) == sorted(ids)


def test_client_event_id_is_kept(send, sample):
    event_id = str(uuid.uuid4())
    assert send({**sample("pageview"), "event_id": event_id}).json == {"event_id": event_id}


def test_wrong_content_type_is_415(embedded_app, send, sample, embedded_worker):
    response = send(json.dumps(sample("pageview")).encode(), content_type="text/plain")
    assert response.status_code == 415
    assert response.json["code"] == 415
    assert wait_for(lambda: [r.kind for r in rejections(embedded_app)]) == ["unsupported_media_type"]


@pytest.mark.parametrize("body", [b"", b"   ", b'{"session_id": "abc"', b"\xff\xfe{}", b"[1, 2"])
def test_unreadable_body_is_400(send, body):
    response = send(body)
    assert response.status_code == 400
    assert response.json["message"]


def test_body_over_one_mib_is_413(send, sample):
    event = {**sample("pageview"), "data": {"host": "a.com", "path": "/" + "x" * (1024 * 1024)}}
    response = send(event)
    assert response.status_code == 413
    assert response.json["code"] == 413


def test_data_over_32_kib_is_invalid_payload(send, sample):
    event = {**sample("form_submit")}
    event["data"] = {**event["data"], "form": {"essay": "x" * (33 * 1024)}}
    response = send(event)
    assert response.status_code == 422
    assert response.json["kind"] == "invalid_payload"


def test_nesting_deeper_than_32_is_rejected(send, sample):
    nested = {}
    for _ in range(40):
        nested = {"a": nested}
    response = send({**sample("form_submit"), "data": {"host": "a.com", "path": "/", "form": nested}})
    assert response.status_code in (400, 422)
    assert "Nesting" in json.dumps(response.json)


def test_nul_character_is_a_clear_422(send, sample):
    response = send({**sample("pageview"), "category": "page\u0000interaction"})
    assert response.status_code == 422
    assert "NUL" in json.dumps(response.json)


@pytest.mark.parametrize("timestamp", ["2021-01-01T09:15:27Z", "2021-01-01 09:15:27", "2021-01-01T09:15:27.5+05:30",
                                       "0001-01-01 00:00:00"])
def test_timestamp_forms_accepted(send, sample, timestamp):
    assert send({**sample("pageview"), "timestamp": timestamp}).status_code == 202


@pytest.mark.parametrize("timestamp", ["yesterday", "2021-01-01", "2021-13-01 00:00:00", 1609492527,
                                       "0001-01-01T00:00:00+01:00"])
def test_bad_timestamps_are_422(send, sample, timestamp):
    response = send({**sample("pageview"), "timestamp": timestamp})
    assert response.status_code == 422
    assert "timestamp" in response.json["errors"]


def test_unregistered_type_is_accepted_unless_strict(send, sample, monkeypatch, embedded_app):
    event = {**sample("pageview"), "category": "video", "name": "play", "data": {"anything": [1, 2]}}
    assert send(event).status_code == 202
    embedded_app.config["EYE_STRICT_EVENT_TYPES"] = True
    response = send(event)
    assert response.status_code == 422 and response.json["kind"] == "unknown_event_type"


def test_batch_gives_per_item_verdicts(send, sample):
    events = [sample("pageview"), "not an object", sample("bad_unexpected_field"), sample("cta_click")]
    response = send({"events": events}, "/api/v1/events/batch")
    assert response.status_code == 202
    body = response.json
    assert body["accepted"] == 2 and len(body["event_ids"]) == 2
    assert [(r["index"], r["kind"]) for r in body["rejected"]] == [(1, "invalid_event"), (2, "invalid_payload")]


def test_batch_with_nothing_accepted_is_422_with_verdicts(embedded_app, send, sample, embedded_worker):
    response = send({"events": [sample("bad_wrong_types"), sample("bad_future_timestamp")]}, "/api/v1/events/batch")
    assert response.status_code == 422
    body = response.json
    assert body["code"] == 422 and body["accepted"] == 0 and body["event_ids"] == []
    assert [r["kind"] for r in body["rejected"]] == ["invalid_event", "future_timestamp"]
    kinds = wait_for(lambda: sorted(r.kind for r in rejections(embedded_app)) or None)
    assert kinds == ["future_timestamp", "invalid_event"]


@pytest.mark.parametrize("body", [{"events": []}, {"events": "x"}, [1], {"events": [{}] * 501}])
def test_batch_shape_errors_are_422(send, body):
    response = send(body, "/api/v1/events/batch")
    assert response.status_code == 422
    assert response.json["message"]
