"""Every refusal, whatever the shape of its errors, reaches the errors store; one request's refusal
never decides the fate of another request's events (real PostgreSQL, RabbitMQ and worker)."""

import copy
import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from app.event_types import launch_registry
from app.extensions import db
from app.identity.keys import authenticate
from app.ingest.validation import validate_event
from app.models import Event, Rejection
from tests.fixtures.apps import wait_for

registry = launch_registry()  # the registry every app is made with

SAMPLE_OF_TYPE = {
    ("page interaction", "pageview"): "pageview",
    ("page interaction", "cta click"): "cta_click",
    ("form interaction", "submit"): "form_submit",
    ("mouse", "move"): "mouse_move",
}
BROKER_COMPLAINTS = ("broker did not confirm", "broker unavailable")


def test_every_registered_type_has_a_sample():
    """The property below draws from these samples: a newly registered type must add one."""
    assert {key for key, _ in registry} == set(SAMPLE_OF_TYPE)


def post(client, key, body, path="/api/v1/events"):
    return client.post(path, data=json.dumps(body), headers={"X-API-Key": key}, content_type="application/json")


def errors_of(client, key, application):
    """The errors store's records of one application, newest first."""
    return client.get(f"/api/v1/errors?limit=1000&application={application}",
                      headers={"X-API-Key": key}).json["items"]


def fresh_key(pg_key) -> tuple[str, str]:
    """A key of scopes ingest + read for a new application; returns (key, application name)."""
    application = f"refusals-{uuid.uuid4().hex[:8]}"
    return pg_key("ingest", "read", application=application), application


# What can be wrong with an event: (where, how). Each keeps the rest of the event valid.
WRONG_VALUES = st.sampled_from([None, "ten", 10, 1.5, True, [], [1, "a"], {}, {"nested": {"deep": [1]}}])


@st.composite
def invalid_events(draw):
    """An event of a registered type (or its envelope) made invalid in one or two ways."""
    category, name = draw(st.sampled_from(sorted(SAMPLE_OF_TYPE)))
    with open(f"{_samples}/{SAMPLE_OF_TYPE[(category, name)]}.json") as body:
        event = json.load(body)
    event["session_id"] = str(uuid.uuid4())
    for _ in range(draw(st.integers(1, 2))):
        mutation = draw(st.sampled_from(["drop_envelope", "wrong_envelope", "unknown_envelope", "drop_data",
                                         "wrong_data", "unknown_data", "bad_list_item", "nested_wrong"]))
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        if mutation == "drop_envelope":
            event.pop(draw(st.sampled_from(["session_id", "category", "name", "data", "timestamp"])), None)
        elif mutation == "wrong_envelope":
            event[draw(st.sampled_from(["session_id", "timestamp", "event_id", "category"]))] = draw(WRONG_VALUES)
        elif mutation == "unknown_envelope":
            event[draw(st.text("abcxyz_", min_size=1, max_size=8)).join("__")] = draw(WRONG_VALUES)
        elif mutation == "drop_data" and data:
            data.pop(draw(st.sampled_from(sorted(data))))
        elif mutation == "wrong_data" and data:
            data[draw(st.sampled_from(sorted(data)))] = draw(WRONG_VALUES)
        elif mutation == "unknown_data":
            data["unknown_" + draw(st.text("abc", min_size=1, max_size=4))] = draw(WRONG_VALUES)
        elif mutation == "bad_list_item" and isinstance(data.get("points"), list) and data["points"]:
            index = draw(st.integers(0, len(data["points"]) - 1))
            # A point the first mutation already made wrong may not be a dict any more.
            if draw(st.booleans()) or not isinstance(data["points"][index], dict):
                data["points"][index] = draw(WRONG_VALUES)
            else:
                data["points"][index] = {**data["points"][index], draw(st.sampled_from("xyt")): draw(WRONG_VALUES)}
        elif mutation == "nested_wrong" and isinstance(data.get("form"), dict):
            data["form"] = {"first_name": draw(WRONG_VALUES)} if draw(st.booleans()) else draw(WRONG_VALUES)
        elif mutation == "nested_wrong" and isinstance(data.get("viewport"), dict):
            data["viewport"]["w"] = draw(WRONG_VALUES)
    return event


_samples = None


@pytest.fixture(autouse=True)
def samples_path(samples_dir):
    """The strategy reads the shared samples (hypothesis strategies cannot take fixtures)."""
    global _samples
    _samples = samples_dir


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])
@given(event=invalid_events(), batched=st.booleans(), with_good_mate=st.booleans())
def test_each_refusal_is_recorded_with_its_kind_and_field_errors(pg_client, pg_key, sample, caplog, event,
                                                                  batched, with_good_mate):
    """Hypothesis: any invalid event, alone or in a batch, is answered 4xx AND found in the errors store."""
    reference = validate_event(copy.deepcopy(event), registry, now=_now(), max_skew=300, strict_types=False,
                               compiled=False)
    assume(not reference.accepted)
    key, application = fresh_key(pg_key)
    caplog.set_level(logging.WARNING)
    good = {**sample("pageview"), "session_id": str(uuid.uuid4())}
    if batched:
        items = [good, event] if with_good_mate else [event]
        response = post(pg_client, key, {"events": items}, "/api/v1/events/batch")
        assert response.status_code == (202 if with_good_mate else 422), response.json
        answered = [(item["kind"], item["errors"]) for item in response.json["rejected"]]
    else:
        response = post(pg_client, key, event)
        assert response.status_code == 422, response.json
        answered = [(response.json["kind"], response.json["errors"])]
    assert answered == [(reference.kind, json.loads(json.dumps(reference.errors)))]

    recorded = wait_for(lambda: errors_of(pg_client, key, application) or None, timeout=10)
    assert [(item["kind"], item["errors"]) for item in recorded] == answered
    assert json.loads(recorded[0]["raw"]) == event
    if batched and with_good_mate:
        events = pg_client.get(f"/api/v1/sessions/{good['session_id']}/events", headers={"X-API-Key": key})
        wait_for(lambda: pg_client.get(f"/api/v1/sessions/{good['session_id']}",
                                       headers={"X-API-Key": key}).status_code == 200, timeout=10)
        assert events.status_code == 200
    complaints = [r.getMessage() for r in caplog.records if any(c in r.getMessage() for c in BROKER_COMPLAINTS)]
    assert complaints == []


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def bad_mouse_move(sample) -> dict:
    """The issue's own example: the second point's x is a word, so the errors are keyed by index."""
    event = {**sample("mouse_move"), "session_id": str(uuid.uuid4())}
    event["data"] = copy.deepcopy(event["data"])
    event["data"]["points"][1]["x"] = "ten"
    return event


def test_a_good_event_beside_a_list_item_refusal_is_accepted_and_both_kept(pg_client, pg_key, sample, caplog):
    key, application = fresh_key(pg_key)
    good = {**sample("pageview"), "session_id": str(uuid.uuid4()), "event_id": str(uuid.uuid4())}
    caplog.set_level(logging.WARNING)
    for _ in range(2):  # a retry is answered the same way
        response = post(pg_client, key, {"events": [good, bad_mouse_move(sample)]}, "/api/v1/events/batch")
        assert response.status_code == 202, response.json
        assert response.json["event_ids"] == [good["event_id"]]
        assert response.json["rejected"][0]["errors"] == {"data": {"points": {"1": {"x": ["Not a valid number."]}}}}
    recorded = wait_for(lambda: len(errors_of(pg_client, key, application)) == 2
                        and errors_of(pg_client, key, application))
    assert {json.dumps(r["errors"]) for r in recorded} == {
        json.dumps({"data": {"points": {"1": {"x": ["Not a valid number."]}}}})}
    stored = wait_for(lambda: pg_client.get(f"/api/v1/sessions/{good['session_id']}/events",
                                            headers={"X-API-Key": key}).json["items"])
    assert [e["event_id"] for e in stored] == [good["event_id"]]
    assert not [r for r in caplog.records if any(c in r.getMessage() for c in BROKER_COMPLAINTS)]


def test_concurrent_refusals_never_fail_other_requests(pg_app, pg_key, sample, caplog):
    """The issue's scenario: 2 threads send bad mouse moves while 6 send pageviews, for 4 s.

    The publisher merges whatever waits into one message: before the fix, one unencodable refusal
    failed the whole message and answered 503 to the pageviews that happened to share it.
    """
    key = pg_key("ingest")
    caplog.set_level(logging.WARNING)
    stop_at = time.monotonic() + 4
    statuses: dict[str, list[int]] = {"good": [], "bad": []}
    accepted_ids: list[str] = []
    lock = threading.Lock()

    def send(kind: str):
        client = pg_app.test_client()
        while time.monotonic() < stop_at:
            if kind == "good":
                event = {**sample("pageview"), "session_id": str(uuid.uuid4()), "event_id": str(uuid.uuid4())}
            else:
                event = bad_mouse_move(sample)
            status = post(client, key, event).status_code
            with lock:
                statuses[kind].append(status)
                if status == 202:
                    accepted_ids.append(event["event_id"])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, ["bad"] * 2 + ["good"] * 6))

    good = {status: statuses["good"].count(status) for status in statuses["good"]}
    assert statuses["good"] and good == {202: len(statuses["good"])}, good
    assert statuses["bad"] and set(statuses["bad"]) == {422}
    assert not [r for r in caplog.records if any(c in r.getMessage() for c in BROKER_COMPLAINTS)]
    # Every refusal is recorded and every accepted pageview stored, once.
    with pg_app.app_context():
        application_id = authenticate(key, 0).application_id
        wait_for(lambda: count(Rejection, Rejection.application_id == application_id) == len(statuses["bad"]),
                 timeout=30)
        wait_for(lambda: count(Event, Event.event_id.in_([uuid.UUID(i) for i in accepted_ids]))
                 == len(accepted_ids), timeout=30)


def count(model, condition) -> int:
    db.session.rollback()  # a fresh snapshot on each poll
    return db.session.scalar(select(func.count()).select_from(model).where(condition))


def encoding_failures() -> float:
    return REGISTRY.get_sample_value("eye_message_encoding_failures_total") or 0.0


def test_a_part_the_encoder_refuses_is_counted_logged_and_still_recorded(pg_app, pg_client, pg_key, caplog):
    """Defence in depth: if validation ever let through what the encoder refuses, the record is kept
    (as text), an operator sees a counter and a log line, and nothing is called a broker outage."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from app.ingest.publishing import publish_part

    key, application = fresh_key(pg_key)
    caplog.set_level(logging.WARNING)
    with pg_app.app_context():
        application_id = authenticate(key, 0).application_id
        before = encoding_failures()
        part = {"application_id": application_id, "received_at": datetime.now(UTC).isoformat(), "events": [],
                "rejections": [{"id": str(uuid.uuid4()), "application_id": application_id,
                                "received_at": datetime.now(UTC).isoformat(), "kind": "invalid_payload",
                                "category": "mouse", "name": "move", "raw": "{}",
                                "errors": {"data": {7: ["integer key"], "limit": [Decimal("1.5")]}}}]}
        publish_part(part)
        assert encoding_failures() == before + 1
    assert any("could not be encoded" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    assert not [r for r in caplog.records if any(c in r.getMessage() for c in BROKER_COMPLAINTS)]
    recorded = wait_for(lambda: errors_of(pg_client, key, application))
    assert recorded[0]["errors"] == {"data": {"7": ["integer key"], "limit": ["1.5"]}}
