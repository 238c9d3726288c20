"""The read API on the real PostgreSQL, fed through the real API, RabbitMQ and worker.

Each test sends its events under applications, categories and a time window of its own, so what
it reads back is exactly what it sent, whatever else the shared test database holds.
"""

import json
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Application, Event, Rejection
from tests.fixtures.apps import make_key_factory, wait_for


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def a_window_of_our_own() -> datetime:
    """An hour in 2003 no other test sends events to."""
    return datetime(2003, 1, 1, tzinfo=UTC) + timedelta(hours=random.randrange(24 * 360))


def iso(moment: datetime) -> str:
    return moment.isoformat()


PAGE = {"host": "example.com", "path": "/"}


def event(session_id: str, timestamp: datetime, category="page interaction", name="pageview",
          data: dict = PAGE) -> dict:
    return {"event_id": str(uuid.uuid4()), "session_id": session_id, "category": category, "name": name,
            "data": data, "timestamp": iso(timestamp)}


def stored_count(app, application: str, model=Event) -> int:
    with app.app_context():
        return db.session.scalar(
            select(func.count()).select_from(model).join(Application, model.application_id == Application.id)
            .where(Application.name == application)
        )


class Sender:
    """Sends events as one application, and waits until the worker has stored them."""

    def __init__(self, app, make_key, application: str):
        self.app, self.application = app, application
        self.key = make_key("ingest", application=application)
        self.sent = 0

    def send(self, *events: dict) -> list[dict]:
        response = self.app.test_client().post(
            "/api/v1/events/batch", data=json.dumps({"events": list(events)}),
            headers={"X-API-Key": self.key}, content_type="application/json")
        assert response.status_code == 202, response.json
        self.sent += len(events)
        wait_for(lambda: stored_count(self.app, self.application) == self.sent)
        return list(events)


@pytest.fixture(scope="module")
def dataset(pg_app, pg_worker):
    """Seven events of two applications and two sessions in an hour of their own, with ties."""
    make_key = make_key_factory(pg_app)
    web, mobile = Sender(pg_app, make_key, unique("web")), Sender(pg_app, make_key, unique("mobile"))
    start, s1, s2 = a_window_of_our_own(), str(uuid.uuid4()), str(uuid.uuid4())
    probe, ping = unique("probe"), unique("ping")
    at = [start + timedelta(seconds=s) for s in range(0, 60, 10)]
    # Three arrivals share the timestamp at[1]: they must come back in the order they arrived.
    web_first = web.send(event(s1, at[0]), event(s1, at[1], name="cta click", data={**PAGE, "element": "buy"}),
                         event(s2, at[2]), event(s1, at[3], category=probe, name=ping, data={}))
    mobile_events = mobile.send(event(s2, at[1], name="cta click", data={**PAGE, "element": "chat"}), event(s1, at[4]))
    web_last = web.send(event(s1, at[1]))
    ordered = [web_first[0], web_first[1], mobile_events[0], web_last[0], web_first[2], web_first[3],
               mobile_events[1]]
    return {"start": start, "at": at, "s1": s1, "s2": s2, "web": web.application,
            "mobile": mobile.application, "probe": probe, "ping": ping, "ordered": ordered}


@pytest.fixture
def reader(pg_client, pg_key):
    """Factory: GET a read endpoint with a read key."""
    key = pg_key("read")

    def get(path: str, **params):
        return pg_client.get(path, query_string=params, headers={"X-API-Key": key})

    return get


def ids(response) -> list[str]:
    assert response.status_code == 200, response.json
    return [item["event_id"] for item in response.json["items"]]


def ids_of(events: list[dict]) -> list[str]:
    return [e["event_id"] for e in events]


def test_time_window_lists_events_by_timestamp_then_arrival(dataset, reader):
    start = dataset["start"]
    response = reader("/api/v1/events", since=iso(start), until=iso(start + timedelta(hours=1)))

    assert ids(response) == ids_of(dataset["ordered"])
    first = response.json["items"][1]
    assert first["application"] == dataset["web"] and first["data"] == {"host": "example.com", "path": "/",
                                                                         "element": "buy"}
    assert first["timestamp"] == iso(dataset["at"][1])
    assert datetime.fromisoformat(first["received_at"]).tzinfo is not None


def test_each_filter_alone(dataset, reader):
    ordered = dataset["ordered"]
    s1 = [e for e in ordered if e["session_id"] == dataset["s1"]]
    assert ids(reader("/api/v1/events", session_id=dataset["s1"])) == ids_of(s1)
    assert ids(reader("/api/v1/events", category=dataset["probe"])) == ids_of(ordered[5:6])
    assert ids(reader("/api/v1/events", name=dataset["ping"])) == ids_of(ordered[5:6])
    assert ids(reader("/api/v1/events", application=dataset["mobile"])) == ids_of([ordered[2], ordered[6]])
    at = dataset["at"]
    # Half-open: `since` is in, `until` is out.
    assert ids(reader("/api/v1/events", since=iso(at[1]), until=iso(at[2]))) == ids_of(ordered[1:4])


def test_filters_combined(dataset, reader):
    ordered, window = dataset["ordered"], {"since": iso(dataset["start"]), "until": iso(dataset["at"][4])}
    assert ids(reader("/api/v1/events", **window, category="page interaction", name="cta click")) == \
        ids_of(ordered[1:3])
    assert ids(reader("/api/v1/events", session_id=dataset["s1"], application=dataset["web"],
                      name="pageview")) == ids_of([ordered[0], ordered[3]])
    assert ids(reader("/api/v1/events", session_id=dataset["s2"], application=dataset["web"], **window)) == \
        ids_of(ordered[4:5])
    assert ids(reader("/api/v1/events", session_id=dataset["s2"], category=dataset["probe"])) == []


def test_session_summary_and_its_events(dataset, reader):
    summary = reader(f"/api/v1/sessions/{dataset['s1']}")
    assert summary.status_code == 200
    assert summary.json == {
        "session_id": dataset["s1"], "first_event_at": iso(dataset["at"][0]),
        "last_event_at": iso(dataset["at"][4]), "event_count": 5,
        "applications": sorted([dataset["web"], dataset["mobile"]]),
    }
    s1 = [e for e in dataset["ordered"] if e["session_id"] == dataset["s1"]]
    pages = [reader(f"/api/v1/sessions/{dataset['s1']}/events", limit=2)]
    while pages[-1].json["next_cursor"]:
        pages.append(reader(f"/api/v1/sessions/{dataset['s1']}/events", limit=2,
                            cursor=pages[-1].json["next_cursor"]))
    assert [len(p.json["items"]) for p in pages] == [2, 2, 1]
    assert sum((ids(p) for p in pages), []) == ids_of(s1)
    assert reader(f"/api/v1/sessions/{uuid.uuid4()}").status_code == 404


def test_walk_under_concurrent_inserts_has_no_duplicates_and_no_gaps(pg_app, pg_worker, reader):
    sender = Sender(pg_app, make_key_factory(pg_app), unique("walk"))
    start, session = a_window_of_our_own(), str(uuid.uuid4())
    # Pairs of equal timestamps, so ties fall on page boundaries too.
    existing = sender.send(*[event(session, start + timedelta(seconds=i // 2, microseconds=7)) for i in range(60)])
    must_not_appear, must_appear, walked, cursor = [], [], [], None
    while True:
        page = reader("/api/v1/events", application=sender.application, limit=7,
                      **({"cursor": cursor} if cursor else {}))
        walked += page.json["items"]
        cursor = page.json["next_cursor"]
        if cursor is None:
            break
        # While the walk is under way: one event sorting before where it stands, one tying with its
        # last timestamp (later arrival, so after it), one further on.
        last = datetime.fromisoformat(walked[-1]["timestamp"])
        behind, tie, ahead = (event(session, last - timedelta(microseconds=1)), event(session, last),
                              event(session, last + timedelta(seconds=1, microseconds=3)))
        sender.send(behind, tie, ahead)
        must_not_appear.append(behind)
        must_appear += [tie, ahead]

    walked_ids = [item["event_id"] for item in walked]
    assert len(walked_ids) == len(set(walked_ids)), "an event came twice"
    assert set(ids_of(existing)) <= set(walked_ids), "an event that existed when the walk began is missing"
    assert set(ids_of(must_appear)) <= set(walked_ids)
    assert not set(ids_of(must_not_appear)) & set(walked_ids)
    keys = [(item["timestamp"], item["received_at"]) for item in walked]
    assert keys == sorted(keys, key=lambda k: (datetime.fromisoformat(k[0]), datetime.fromisoformat(k[1])))


@pytest.mark.parametrize("params,field", [
    ({"since": "yesterday"}, "since"),
    ({"until": "2021-02-30T00:00:00"}, "until"),
    ({"since": "9999-12-31T23:59:59-01:00"}, "since"),  # past what a datetime can hold in UTC
    ({"session_id": "e2085be5-9137-4e4e-80b5"}, "session_id"),
    ({"since": "2021-01-02", "until": "2021-01-01T23:59:59"}, "since"),
    ({"limit": "1001"}, "limit"),
    ({"limit": "-1"}, "limit"),
    ({"application": "x" * 65}, "application"),
    ({"category": "page\x00interaction"}, "category"),  # PostgreSQL text cannot even be asked for a NUL
])
def test_bad_parameters_are_a_422_with_a_message(reader, params, field):
    response = reader("/api/v1/events", **params)
    assert response.status_code == 422
    assert response.is_json and response.json["message"]
    assert field in response.json["errors"]["query"]


def test_extreme_but_valid_windows_are_answered(reader):
    response = reader("/api/v1/events", since="0001-01-01", until="0001-01-02", limit=1)
    assert response.status_code == 200 and response.json == {"items": [], "next_cursor": None}
    assert reader("/api/v1/errors", since="9999-12-31T23:59:59").status_code == 200


def test_unreadable_cursors_are_a_400_never_a_500(dataset, reader):
    cursor = reader("/api/v1/events", session_id=dataset["s1"], limit=1).json["next_cursor"]
    head, _, signature = cursor.rpartition(".")
    for bad in ("%%%", cursor + "x", head + "." + signature[::-1], "x" * 3000):
        response = reader("/api/v1/events", cursor=bad)
        assert response.status_code == 400, bad
        assert response.json["code"] == 400 and response.json["message"]
    assert reader("/api/v1/errors", cursor=cursor).status_code == 400


@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/sessions/{s1}", "/api/v1/sessions/{s1}/events",
                                  "/api/v1/errors", "/api/v1/errors/summary", "/api/v1/event-types"])
def test_an_ingest_only_key_cannot_read(dataset, pg_client, pg_key, path):
    path = path.format(s1=dataset["s1"])
    response = pg_client.get(path, headers={"X-API-Key": pg_key("ingest")})
    assert response.status_code == 403 and response.json["code"] == 403
    assert pg_client.get(path).status_code == 401


def test_errors_and_summary_reflect_the_bad_samples(pg_app, pg_client, pg_key, reader, sample):
    application = unique("samples")
    key = pg_key("ingest", application=application)
    since = datetime.now(UTC)
    for name in ("bad_future_timestamp", "bad_unexpected_field", "bad_wrong_types", "bad_trailing_comma"):
        response = pg_client.post("/api/v1/events", data=sample(name, raw=True), headers={"X-API-Key": key},
                                  content_type="application/json")
        assert response.status_code in (400, 422)
    category, name = unique("probe"), unique("ping")
    unregistered = event(str(uuid.uuid4()), datetime(2021, 1, 1, tzinfo=UTC), category, name, data={})
    assert pg_client.post("/api/v1/events", data=json.dumps(unregistered), headers={"X-API-Key": key},
                          content_type="application/json").status_code == 202
    until = datetime.now(UTC) + timedelta(milliseconds=1)
    wait_for(lambda: stored_count(pg_app, application, Rejection) == 4 and stored_count(pg_app, application) == 1)

    listed = reader("/api/v1/errors", application=application)
    assert listed.status_code == 200 and listed.json["next_cursor"] is None
    items = listed.json["items"]
    assert [i["kind"] for i in items] == ["future_timestamp", "invalid_payload", "invalid_event", "malformed_json"]
    assert {i["application"] for i in items} == {application}
    wrong_types = items[2]
    assert (wrong_types["category"], wrong_types["name"]) == ("form interaction", "submit")
    assert set(wrong_types["errors"]) >= {"session_id", "timestamp", "data"}
    assert "not-a-uuid" in wrong_types["raw"] and '"path": "/",\n  }' in items[3]["raw"]
    only_payload = reader("/api/v1/errors", application=application, kind="invalid_payload").json["items"]
    assert [i["errors"] for i in only_payload] == [{"data": {"color": ["Unknown field."]}}]

    summary = reader("/api/v1/errors/summary", since=iso(since), until=iso(until))
    assert summary.status_code == 200
    assert summary.json["by_kind"] == {"future_timestamp": 1, "invalid_payload": 1, "invalid_event": 1,
                                       "malformed_json": 1}
    assert sorted(summary.json["by_type"], key=lambda t: t["kind"]) == [
        {"category": "page interaction", "name": "pageview", "kind": "future_timestamp", "count": 1},
        {"category": "form interaction", "name": "submit", "kind": "invalid_event", "count": 1},
        {"category": "page interaction", "name": "cta click", "kind": "invalid_payload", "count": 1},
    ]
    assert summary.json["unregistered"] == [{"category": category, "name": name, "count": 1}]
    earlier = reader("/api/v1/errors/summary", until=iso(since))
    assert earlier.json["unregistered"].count({"category": category, "name": name, "count": 1}) == 0
