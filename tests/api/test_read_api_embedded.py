"""The read API on the embedded default (folder broker, fresh database): events, sessions, the errors monitor, event types.

Events are stored with the worker's own service (`store_message`), so each test controls the
time every event was received at, which decides the order of equal timestamps.
"""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.api.event_types import self_contained
from app.api.openapi import payload_schema_name
from app.event_types import launch_registry
from app.identity import keys
from app.messages import build_message, build_part
from app.storage.message import store_message

registry = launch_registry()  # the registry every app is made with

T0 = datetime(2021, 1, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(embedded_app):
    """Factory: store events as the worker does, sent by `application` and received at `received_at`."""

    def store_events(events: list[dict], application: str = "shop", received_at: datetime = T0,
                     rejections: list[dict] = ()) -> list[dict]:
        with embedded_app.app_context():
            application_id = keys.get_or_create_application(application).id
            full = [{"event_id": str(uuid.uuid4()), "category": "page interaction", "name": "pageview",
                     "data": {"host": "example.com", "path": "/"}, **event} for event in events]
            for event in full:
                event["timestamp"] = event["timestamp"].isoformat()
            store_message(build_message([build_part(
                application_id, received_at, full,
                [{"id": str(uuid.uuid4()), "application_id": application_id,
                  "received_at": received_at.isoformat(), "errors": {"data": ["bad"]}, "raw": "{}", **r}
                 for r in rejections],
            )]))
        return full

    return store_events


@pytest.fixture
def reader(embedded_client, embedded_key):
    """Factory: GET a read endpoint with a read key; returns the response."""
    key = embedded_key("read")

    def get(path: str, **params):
        return embedded_client.get(path, query_string=params, headers={"X-API-Key": key})

    return get


def walk(reader, path: str, **params) -> list[dict]:
    """Every item of a listing, following next_cursor to the end."""
    items, cursor = [], None
    while True:
        page = reader(path, **params, **({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200, page.json
        items += page.json["items"]
        cursor = page.json["next_cursor"]
        if cursor is None:
            return items


def test_events_come_in_timestamp_order_and_equal_timestamps_in_arrival_order(store, reader):
    session = str(uuid.uuid4())
    # Received last, but happened first.
    late = store([{"session_id": session, "timestamp": T0}], received_at=T0 + timedelta(minutes=9))
    # Two arrivals with the same timestamp: the earlier arrival comes first, whatever its batch.
    second = store([{"session_id": session, "timestamp": T0 + timedelta(seconds=5)}],
                   received_at=T0 + timedelta(minutes=2))
    first = store([{"session_id": session, "timestamp": T0 + timedelta(seconds=5)},
                   {"session_id": session, "timestamp": T0 + timedelta(seconds=5)}],
                  received_at=T0 + timedelta(minutes=1))

    items = reader("/api/v1/events", session_id=session).json["items"]

    assert [i["event_id"] for i in items] == [e["event_id"] for e in late + first + second]
    assert items[0] == {
        "event_id": late[0]["event_id"], "session_id": session, "application": "shop",
        "category": "page interaction", "name": "pageview", "data": {"host": "example.com", "path": "/"},
        "timestamp": "2021-01-01T09:00:00+00:00", "received_at": "2021-01-01T09:09:00+00:00",
    }


def test_walking_pages_returns_every_event_once_even_when_microseconds_and_ties_straddle_pages(store, reader):
    session = str(uuid.uuid4())
    # Timestamps a microsecond apart, and runs of exact ties (same timestamp and arrival).
    stored = store([{"session_id": session, "timestamp": T0 + timedelta(microseconds=i // 3)}
                    for i in range(25)])

    items = walk(reader, "/api/v1/events", session_id=session, limit=4)

    assert [i["event_id"] for i in items] == [e["event_id"] for e in stored]
    assert items[3]["timestamp"] == "2021-01-01T09:00:00.000001+00:00"


def test_last_page_has_no_cursor(store, reader):
    session = str(uuid.uuid4())
    store([{"session_id": session, "timestamp": T0 + timedelta(seconds=i)} for i in range(4)])

    full = reader("/api/v1/events", session_id=session, limit=4).json
    assert len(full["items"]) == 4 and full["next_cursor"] is None
    first = reader("/api/v1/events", session_id=session, limit=3).json
    assert len(first["items"]) == 3 and first["next_cursor"]


def test_default_page_is_100_and_1000_is_allowed(store, reader):
    store([{"session_id": str(uuid.uuid4()), "timestamp": T0} for _ in range(101)], application="bulk")

    assert len(reader("/api/v1/events", application="bulk").json["items"]) == 100
    assert len(reader("/api/v1/events", application="bulk", limit=1000).json["items"]) == 101


def test_each_filter_alone_and_combined(store, reader):
    session, other_session = str(uuid.uuid4()), str(uuid.uuid4())
    base = {"session_id": session}
    store([{**base, "timestamp": T0, "category": "page interaction", "name": "pageview"},
           {**base, "timestamp": T0 + timedelta(minutes=1), "category": "page interaction", "name": "cta click",
            "data": {"host": "example.com", "path": "/", "element": "buy"}},
           {"session_id": other_session, "timestamp": T0 + timedelta(minutes=2), "category": "custom",
            "name": "pageview", "data": {}}], application="web")
    store([{**base, "timestamp": T0 + timedelta(minutes=3), "category": "custom", "name": "pageview", "data": {}}],
          application="mobile")

    def names(**params):
        return [(i["category"], i["name"], i["application"])
                for i in reader("/api/v1/events", **params).json["items"]]

    assert len(names(session_id=session)) == 3
    assert names(category="custom") == [("custom", "pageview", "web"), ("custom", "pageview", "mobile")]
    assert names(name="cta click") == [("page interaction", "cta click", "web")]
    assert names(name="pageview", session_id=session) == [
        ("page interaction", "pageview", "web"), ("custom", "pageview", "mobile")]
    assert names(application="mobile") == [("custom", "pageview", "mobile")]
    assert names(application="web", category="custom") == [("custom", "pageview", "web")]
    assert names(category="page interaction", name="pageview", session_id=session) == [
        ("page interaction", "pageview", "web")]
    assert names(application="nobody") == []


def test_since_and_until_are_half_open_and_naive_means_utc(store, reader):
    session = str(uuid.uuid4())
    stored = store([{"session_id": session, "timestamp": T0 + timedelta(minutes=i)} for i in range(4)])
    ids = [e["event_id"] for e in stored]

    def listed(**params):
        return [i["event_id"] for i in reader("/api/v1/events", session_id=session, **params).json["items"]]

    assert listed(since="2021-01-01 09:01:00", until="2021-01-01T09:03:00") == ids[1:3]
    # The same instants with an offset, and with the `+` a query string turns into a space.
    assert listed(since="2021-01-01T11:01:00+02:00") == ids[1:]
    assert listed(since="2021-01-01T11:01:00 02:00") == ids[1:]
    assert listed(until="2021-01-01T09:00:00.000001Z") == ids[:1]
    assert listed(since="2021-01-01", until="2021-01-02") == ids
    assert listed(since="2021-01-01 09:02:00", until="2021-01-01 09:02:00") == []


@pytest.mark.parametrize("params,field", [
    ({"limit": "0"}, "limit"),
    ({"limit": "1001"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"since": "yesterday"}, "since"),
    ({"until": "2021-13-01T00:00:00"}, "until"),
    ({"session_id": "not-a-uuid"}, "session_id"),
    ({"since": "2021-01-02", "until": "2021-01-01"}, "since"),
    ({"categroy": "page interaction"}, "categroy"),  # a misspelt filter must not list everything
    ({"category": ""}, "category"),
    ({"name": "page\x00view"}, "name"),
])
def test_bad_parameters_are_a_422_naming_the_parameter(reader, params, field):
    response = reader("/api/v1/events", **params)
    assert response.status_code == 422
    assert response.json["code"] == 422 and response.json["message"]
    assert field in response.json["errors"]["query"]


@pytest.mark.parametrize("cursor", ["garbage", "eyJrIjoiZXZlbnRzIn0.forged", "None", "a" * 5000])
def test_unreadable_cursor_is_a_400(reader, cursor):
    response = reader("/api/v1/events", cursor=cursor)
    assert response.status_code == 400
    assert response.json["code"] == 400 and "cursor" in response.json["message"]


def test_tampered_or_foreign_cursor_is_a_400(store, reader):
    session = str(uuid.uuid4())
    store([{"session_id": session, "timestamp": T0 + timedelta(seconds=i)} for i in range(3)],
          rejections=[{"kind": "invalid_payload"}, {"kind": "invalid_payload"}])
    cursor = reader("/api/v1/events", session_id=session, limit=1).json["next_cursor"]
    errors_cursor = reader("/api/v1/errors", limit=1).json["next_cursor"]

    tampered = cursor[:-3] + ("AAA" if not cursor.endswith("AAA") else "BBB")
    assert reader("/api/v1/events", cursor=tampered).status_code == 400
    assert reader("/api/v1/events", cursor=errors_cursor).status_code == 400
    assert reader("/api/v1/errors", cursor=cursor).status_code == 400
    assert reader("/api/v1/events", session_id=session, cursor=cursor).status_code == 200


READ_PATHS = ["/api/v1/events", f"/api/v1/sessions/{uuid.uuid4()}", f"/api/v1/sessions/{uuid.uuid4()}/events",
              "/api/v1/errors", "/api/v1/errors/summary", "/api/v1/event-types"]


@pytest.mark.parametrize("path", READ_PATHS)
def test_reading_needs_a_key_with_read_scope(embedded_client, embedded_key, path):
    no_key = embedded_client.get(path)
    assert no_key.status_code == 401 and no_key.json["code"] == 401
    assert embedded_client.get(path, headers={"X-API-Key": "eye_nope_nope"}).status_code == 401
    ingest_only = embedded_client.get(path, headers={"X-API-Key": embedded_key("ingest")})
    assert ingest_only.status_code == 403 and "read" in ingest_only.json["message"]


def test_bad_parameters_of_a_caller_without_a_key_are_a_401(embedded_client):
    assert embedded_client.get("/api/v1/events?limit=0").status_code == 401


def test_session_summary(store, reader):
    session = str(uuid.uuid4())
    store([{"session_id": session, "timestamp": T0 + timedelta(seconds=3)},
           {"session_id": session, "timestamp": T0 + timedelta(seconds=1, microseconds=5)}], application="web")
    store([{"session_id": session, "timestamp": T0 + timedelta(seconds=2)}], application="mobile")

    response = reader(f"/api/v1/sessions/{session}")

    assert response.status_code == 200
    assert response.json == {
        "session_id": session, "first_event_at": "2021-01-01T09:00:01.000005+00:00",
        "last_event_at": "2021-01-01T09:00:03+00:00", "event_count": 3, "applications": ["mobile", "web"],
    }


def test_unknown_session_is_a_404_and_a_bad_id_a_422(reader):
    for path in (f"/api/v1/sessions/{uuid.uuid4()}", f"/api/v1/sessions/{uuid.uuid4()}/events"):
        response = reader(path)
        assert response.status_code == 404 and response.json["message"]
    for path in ("/api/v1/sessions/not-a-uuid", "/api/v1/sessions/not-a-uuid/events"):
        response = reader(path)
        assert response.status_code == 422
        assert "not a UUID" in response.json["message"]
        assert response.json["errors"] == {"path": {"session_id": ["Not a valid UUID."]}}


def test_a_sessions_events_in_order_page_by_page(store, reader):
    session = str(uuid.uuid4())
    stored = store([{"session_id": session, "timestamp": T0 + timedelta(seconds=9 - i)} for i in range(7)])
    store([{"session_id": str(uuid.uuid4()), "timestamp": T0}])  # another session's

    items = walk(reader, f"/api/v1/sessions/{session}/events", limit=3)

    assert [i["event_id"] for i in items] == [e["event_id"] for e in reversed(stored)]
    page = reader(f"/api/v1/sessions/{session}/events", name="nothing-like-it")
    assert page.status_code == 200 and page.json == {"items": [], "next_cursor": None}


def test_errors_listing_filters_and_pages(store, reader):
    store([], application="web", received_at=T0, rejections=[
        {"kind": "invalid_payload", "category": "page interaction", "name": "cta click", "raw": '{"a": 1}'},
        {"kind": "future_timestamp", "category": "page interaction", "name": "pageview"}])
    store([], application="mobile", received_at=T0 + timedelta(hours=1), rejections=[
        {"kind": "invalid_payload", "category": "form interaction", "name": "submit"}])
    store([], application="mobile", received_at=T0 + timedelta(hours=2), rejections=[
        {"kind": "malformed_json", "errors": {"_body": ["Not valid JSON."]}, "raw": "{,"}])

    everything = walk(reader, "/api/v1/errors", limit=1)
    assert [(i["application"], i["kind"]) for i in everything][2:] == [
        ("mobile", "invalid_payload"), ("mobile", "malformed_json")]
    assert everything[3] == {
        "id": everything[3]["id"], "received_at": "2021-01-01T11:00:00+00:00", "application": "mobile",
        "kind": "malformed_json", "category": None, "name": None, "errors": {"_body": ["Not valid JSON."]},
        "raw": "{,", "event_id": None, "replayed_at": None, "replay_outcome": None,
    }

    def kinds(**params):
        return [i["kind"] for i in reader("/api/v1/errors", **params).json["items"]]

    assert kinds(kind="invalid_payload") == ["invalid_payload", "invalid_payload"]
    # Received together: their order is the ids', not the batch's.
    assert sorted(kinds(application="web")) == ["future_timestamp", "invalid_payload"]
    assert kinds(application="mobile", kind="invalid_payload") == ["invalid_payload"]
    assert kinds(since="2021-01-01T10:00:00", until="2021-01-01T11:00:00") == ["invalid_payload"]
    assert reader("/api/v1/errors", since="2021-01-02", until="2021-01-01").status_code == 422


def test_errors_summary_counts_rejections_and_unregistered_events_in_the_window(store, reader):
    store([{"session_id": str(uuid.uuid4()), "timestamp": T0, "category": "video", "name": "play", "data": {}},
           {"session_id": str(uuid.uuid4()), "timestamp": T0, "category": "video", "name": "play", "data": {}},
           {"session_id": str(uuid.uuid4()), "timestamp": T0}],
          received_at=T0, rejections=[
              {"kind": "invalid_payload", "category": "page interaction", "name": "cta click"},
              {"kind": "invalid_payload", "category": "page interaction", "name": "cta click"},
              {"kind": "malformed_json"}])
    store([{"session_id": str(uuid.uuid4()), "timestamp": T0, "category": "video", "name": "stop", "data": {}}],
          received_at=T0 + timedelta(days=1), rejections=[{"kind": "future_timestamp", "category": "mouse",
                                                             "name": "move"}])

    first_day = reader("/api/v1/errors/summary", since="2021-01-01", until="2021-01-02")
    assert first_day.status_code == 200
    assert first_day.json == {
        "by_kind": {"invalid_payload": 2, "malformed_json": 1},
        "by_type": [{"category": "page interaction", "name": "cta click", "kind": "invalid_payload", "count": 2}],
        "unregistered": [{"category": "video", "name": "play", "count": 2}],
    }
    everything = reader("/api/v1/errors/summary").json
    assert everything["by_kind"] == {"invalid_payload": 2, "malformed_json": 1, "future_timestamp": 1}
    assert everything["unregistered"] == [{"category": "video", "name": "play", "count": 2},
                                          {"category": "video", "name": "stop", "count": 1}]
    assert reader("/api/v1/errors/summary", since="2021-01-02", until="2021-01-01").status_code == 422


def test_event_types_are_the_documents_schemas_self_contained(reader, embedded_client):
    response = reader("/api/v1/event-types")
    assert response.status_code == 200
    items = response.json["items"]
    assert [(i["category"], i["name"]) for i in items] == [key for key, _ in registry]

    components = embedded_client.get("/openapi.json").json["components"]["schemas"]
    by_type = {(i["category"], i["name"]): i["schema"] for i in items}
    for (category, name), schema in by_type.items():
        assert "$ref" not in str(schema)
        document = components[payload_schema_name(category, name)]
        assert set(schema["properties"]) == set(document["properties"])
        assert schema.get("required") == document.get("required")

    mouse = by_type[("mouse", "move")]
    assert components["MouseMovePayload"]["properties"]["points"]["items"] == {"$ref": "#/components/schemas/MousePoint"}
    assert mouse["properties"]["points"]["items"] == components["MousePoint"]
    assert mouse["properties"]["viewport"]["properties"]["w"]["type"] == "number"
    assert by_type[("page interaction", "pageview")]["additionalProperties"] is False


def test_openapi_document_describes_the_read_endpoints(embedded_client):
    document = embedded_client.get("/openapi.json").json
    paths = document["paths"]
    expected = {
        "/api/v1/events": {"200", "400", "401", "403", "422"},
        "/api/v1/sessions/{session_id}": {"200", "401", "403", "404", "422"},
        "/api/v1/sessions/{session_id}/events": {"200", "400", "401", "403", "404", "422"},
        "/api/v1/errors": {"200", "400", "401", "403", "422"},
        "/api/v1/errors/summary": {"200", "401", "403", "422"},
        "/api/v1/event-types": {"200", "401", "403"},
    }
    for path, statuses in expected.items():
        operation = paths[path]["get"]
        assert statuses <= set(operation["responses"]), path
        assert operation["summary"] and operation["security"]
    parameters = {p["name"] for p in paths["/api/v1/events"]["get"]["parameters"]}
    assert parameters == {"session_id", "category", "name", "application", "since", "until", "limit", "cursor"}
    page = document["components"]["schemas"]["EventPage"]
    assert set(page["properties"]) == {"items", "next_cursor"}


def test_a_schema_that_contains_itself_is_kept_once_under_defs():
    node = {"type": "object", "properties": {
        "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
        "label": {"$ref": "#/components/schemas/Label"}}}
    components = {"Node": node, "Label": {"type": "string"}}

    schema = self_contained(node, components, seen=("Node",))

    assert schema["properties"]["label"] == {"type": "string"}
    assert schema["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    assert schema["$defs"]["Node"]["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
