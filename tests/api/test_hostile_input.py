"""What fuzzers rarely reach: every one gets a clear 4xx (or is stored faithfully), never a 500."""

import json

import pytest


@pytest.fixture
def post(embedded_client, embedded_key):
    """POST raw bytes to the single-event route with a valid ingest key."""
    key = embedded_key("ingest")

    def send(body: bytes, content_type="application/json", path="/api/v1/events"):
        return embedded_client.post(path, data=body, headers={"X-API-Key": key}, content_type=content_type)
    return send


def event(sample, **changes) -> dict:
    return {**sample("pageview"), **changes}


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_numbers_are_400(post, sample, literal):
    body = json.dumps(event(sample, data={"host": "a.com", "path": "/", "n": 1})).encode().replace(b"1}", literal + b"}")
    response = post(body)
    assert response.status_code == 400 and response.json["message"]


def test_huge_integers_are_422_naming_each_field(post, sample):
    body = json.dumps(event(sample, category="custom", name="big")).encode().replace(
        b'"path": "/"}', b'"path": "/", "n": 123456789012345678901234567890123, "m": -18446744073709551617}')
    response = post(body)
    assert response.status_code == 422 and response.json["kind"] == "invalid_event"
    assert set(response.json["errors"]["data"]) == {"n", "m"}


def test_lone_surrogate_is_400(post, sample):
    body = json.dumps(event(sample)).encode().replace(b'"path": "/"', b'"path": "/\\ud800"')
    assert post(body).status_code == 400


@pytest.mark.parametrize("where", ["category", "data", "key"])
def test_nul_characters_anywhere_are_422(post, sample, where):
    item = event(sample)
    if where == "category":
        item["category"] = "page\x00interaction"
    elif where == "data":
        item["data"] = {"host": "a.com", "path": "/\x00"}
    else:
        item = {**item, "category": "custom", "data": {"bad\x00key": 1}}
    response = post(json.dumps(item).encode())
    assert response.status_code == 422 and "NUL" in response.json["errors"]["_schema"][0]


def test_one_megabyte_string_is_413(post, sample):
    assert post(json.dumps(event(sample, name="x" * (1024 * 1024))).encode()).status_code == 413


def test_long_strings_under_the_limit_are_422_not_500(post, sample):
    response = post(json.dumps(event(sample, name="x" * 100_000)).encode())
    assert response.status_code == 422 and "name" in response.json["errors"]


@pytest.mark.parametrize("timestamp,status", [
    ("0001-01-01T00:00:00", 202), ("0001-01-01T00:30:00+01:00", 422), ("9999-12-31T23:59:59", 422),
    ("2021-01-01T09:15:27+14:00", 202), ("2021-01-01T09:15:27-12:00", 202), ("2021-01-01T09:15:27+05:45", 202),
    ("2021-01-01T09:15:27+25:00", 422), ("2021-01-01T24:00:00", 422), ("", 422), ("2021-01-01T09:15:27.1234567", 202),
])
def test_timestamp_edges(post, sample, timestamp, status):
    response = post(json.dumps(event(sample, timestamp=timestamp)).encode())
    assert response.status_code == status, response.json
    if status == 422:
        assert response.json["kind"] in ("invalid_event", "future_timestamp")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "application/jsonx", ""])
def test_content_type_lies_are_415(post, sample, content_type):
    assert post(json.dumps(event(sample)).encode(), content_type=content_type).status_code == 415


def test_json_content_type_over_a_form_body_is_400(post):
    assert post(b"session_id=abc&category=x", content_type="application/json").status_code == 400


def test_json_charset_parameter_is_fine(post, sample):
    assert post(json.dumps(event(sample)).encode(), content_type="application/json; charset=utf-8").status_code == 202


@pytest.mark.parametrize("body", [b"null", b"42", b'"text"', b"[]", b"true"])
def test_non_object_bodies_are_422(post, body):
    response = post(body)
    assert response.status_code == 422 and response.json["kind"] == "invalid_event"


def test_deep_nesting_beyond_the_parser_is_400(post):
    assert post(b"[" * 5000 + b"]" * 5000).status_code == 400


@pytest.mark.parametrize("points", [
    [{"x": 1, "y": 2}],  # no t
    [{"x": 1, "y": 2, "t": "soon"}],
    [{"x": 1, "y": 2, "t": 1}, {"x": 1}],
    [{"x": 1, "y": 2, "t": 1}, "a point"],
])
def test_broken_mouse_points_are_422_not_500(post, sample, points):
    # The future-point rule runs even when some points failed to load: it must skip them, not crash.
    response = post(json.dumps({**sample("mouse_move"), "data": {"points": points}}).encode())
    assert response.status_code == 422, response.json
    assert response.json["errors"]["data"]["points"]


@pytest.mark.parametrize("host", ["www.example.com\n", "www.example.com:80\n", "a.com\nb.com"])
def test_a_host_with_a_newline_is_422(post, sample, host):
    response = post(json.dumps(event(sample, data={"host": host, "path": "/"})).encode())
    assert response.status_code == 422 and response.json["errors"]["data"]["host"]
