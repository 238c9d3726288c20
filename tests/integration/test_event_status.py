"""Where is my event? GET /api/v1/events/{event_id} answers with every stored copy and every recorded
refusal of an event_id (real PostgreSQL, RabbitMQ and worker)."""

import json
import uuid
from datetime import UTC, datetime, timedelta

from tests.fixtures.apps import wait_for


def post(client, key, body, path="/api/v1/events"):
    return client.post(path, data=json.dumps(body), headers={"X-API-Key": key}, content_type="application/json")


def status_of(client, key, event_id):
    return client.get(f"/api/v1/events/{event_id}", headers={"X-API-Key": key})


def fresh_key(pg_key) -> tuple[str, str]:
    application = f"status-{uuid.uuid4().hex[:8]}"
    return pg_key("ingest", "read", application=application), application


def test_a_stored_event_is_found_with_its_application_and_times(pg_client, pg_key, sample):
    key, application = fresh_key(pg_key)
    event = {**sample("pageview"), "session_id": str(uuid.uuid4()), "event_id": str(uuid.uuid4())}
    assert post(pg_client, key, event).status_code == 202
    found = wait_for(lambda: (r := status_of(pg_client, key, event["event_id"])).status_code == 200 and r.json)
    assert found["event_id"] == event["event_id"] and found["refused"] == []
    [copy] = found["stored"]
    assert copy["application"] == application and copy["session_id"] == event["session_id"]
    assert (copy["category"], copy["name"]) == (event["category"], event["name"])
    assert datetime.fromisoformat(copy["timestamp"]) == datetime.fromisoformat(event["timestamp"]).replace(tzinfo=UTC)
    assert copy["received_at"]


def test_a_refused_event_is_found_with_its_kind_and_field_errors_and_the_errors_list_filters_by_it(
    pg_client, pg_key, sample
):
    key, application = fresh_key(pg_key)
    event = {**sample("pageview"), "session_id": str(uuid.uuid4()), "event_id": str(uuid.uuid4())}
    event["data"] = {"host": "shop.example.com"}  # no path
    response = post(pg_client, key, event)
    assert response.status_code == 422
    found = wait_for(lambda: (r := status_of(pg_client, key, event["event_id"])).status_code == 200 and r.json)
    assert found["stored"] == []
    [refusal] = found["refused"]
    assert refusal["kind"] == "invalid_payload" and refusal["application"] == application
    assert refusal["errors"] == response.json["errors"]

    listed = pg_client.get(f"/api/v1/errors?event_id={event['event_id']}", headers={"X-API-Key": key}).json["items"]
    assert [item["id"] for item in listed] == [refusal["id"]]
    assert listed[0]["event_id"] == event["event_id"]
    other = pg_client.get(f"/api/v1/errors?event_id={uuid.uuid4()}", headers={"X-API-Key": key}).json["items"]
    assert other == []


def test_refused_then_fixed_and_stored_shows_both_and_each_application_its_own_copy(pg_client, pg_key, sample):
    key, application = fresh_key(pg_key)
    other_key, other_application = fresh_key(pg_key)
    event_id = str(uuid.uuid4())
    good = {**sample("pageview"), "session_id": str(uuid.uuid4()), "event_id": event_id}
    too_early = {**good, "timestamp": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}
    assert post(pg_client, key, too_early).status_code == 422  # a client clock an hour ahead
    assert post(pg_client, key, good).status_code == 202  # the fixed client sends it again
    assert post(pg_client, other_key, good).status_code == 202  # the same id from another application

    def complete():
        response = status_of(pg_client, key, event_id)
        return response.status_code == 200 and len(response.json["stored"]) == 2 and response.json["refused"] \
            and response.json
    found = wait_for(complete)
    assert sorted(copy["application"] for copy in found["stored"]) == sorted([application, other_application])
    assert [(r["kind"], r["application"]) for r in found["refused"]] == [("future_timestamp", application)]


def test_an_unknown_event_id_is_a_json_404_and_reading_needs_the_read_scope(pg_client, pg_key):
    key, _ = fresh_key(pg_key)
    response = status_of(pg_client, key, uuid.uuid4())
    assert response.status_code == 404 and response.json["code"] == 404
    assert "event_id" in response.json["message"]
    assert status_of(pg_client, key, "not-a-uuid").status_code == 404

    ingest_only = pg_key("ingest")
    assert status_of(pg_client, ingest_only, uuid.uuid4()).status_code == 403
    assert pg_client.get(f"/api/v1/events/{uuid.uuid4()}").status_code == 401


def test_a_refused_item_without_a_valid_event_id_is_kept_without_one(pg_client, pg_key, sample):
    key, application = fresh_key(pg_key)
    event = {**sample("pageview"), "session_id": str(uuid.uuid4()), "event_id": "not-a-uuid"}
    assert post(pg_client, key, event).status_code == 422

    def recorded():
        items = pg_client.get(f"/api/v1/errors?application={application}", headers={"X-API-Key": key}).json["items"]
        return items
    [item] = wait_for(recorded)
    assert item["event_id"] is None and "not-a-uuid" in item["raw"]
