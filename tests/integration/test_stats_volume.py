"""GET /api/v1/stats/volume: stored events per type and refusals per kind, per step of arrival."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.identity import keys
from app.messages import build_message, build_part, rejection_record
from app.storage.message import store_message

# Three days back: no other test's traffic arrives in this window.
START = (datetime.now(UTC) - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)


def pageview(category: str, name: str) -> dict:
    return {"event_id": str(uuid.uuid4()), "session_id": str(uuid.uuid4()), "category": category, "name": name,
            "data": {"host": "volume.example.com", "path": "/"}, "timestamp": START.isoformat()}


@pytest.fixture
def arrivals(pg_app):
    """Stored events of a type of this test's own and refusals, arrived at known minutes of START's hour."""
    category = f"volume-{uuid.uuid4().hex[:8]}"
    with pg_app.app_context():
        application_id = keys.get_or_create_application(category).id
        arrived = {0: 3, 14: 2, 15: 4, 59: 1}  # minute of the hour -> events stored then
        for minute, count in arrived.items():
            at = START + timedelta(minutes=minute, seconds=30)
            store_message(build_message([build_part(application_id, at, [pageview(category, "view")
                                                                          for _ in range(count)], [])]))
        refused_at = START + timedelta(minutes=16)
        store_message(build_message([build_part(application_id, refused_at, [], [
            rejection_record(application_id, "invalid_payload", {"data": ["bad"]}, {"x": 1}, refused_at, category, "view")
            for _ in range(5)])]))
    return category


def volume(client, key, **query):
    return client.get("/api/v1/stats/volume", query_string=query, headers={"X-API-Key": key})


def test_counts_per_step_match_what_was_stored_and_refused(pg_app, pg_key, arrivals):
    client, key = pg_app.test_client(), pg_key("read")
    answer = volume(client, key, since=START.isoformat(), until=(START + timedelta(hours=1)).isoformat(), step="15m")
    assert answer.status_code == 200, answer.json
    body = answer.json
    assert body["step_seconds"] == 900
    assert [datetime.fromisoformat(b) for b in body["buckets"]] == [START + timedelta(minutes=15 * i) for i in range(4)]
    [series] = [s for s in body["stored"] if s["category"] == arrivals]
    assert (series["name"], series["counts"], series["total"]) == ("view", [5, 4, 0, 1], 10)
    [refused] = [s for s in body["refused"] if s["kind"] == "invalid_payload"]
    assert refused["counts"] == [0, 5, 0, 0] and refused["total"] == 5

    # A window is widened to whole minutes (its end to the end of its minute); a minute step sees each.
    fine = volume(client, key, since=(START + timedelta(minutes=14, seconds=40)).isoformat(),
                  until=(START + timedelta(minutes=15, seconds=5)).isoformat(), step="1m").json
    assert [datetime.fromisoformat(b) for b in fine["buckets"]] == [START + timedelta(minutes=14),
                                                                     START + timedelta(minutes=15)]
    [series] = [s for s in fine["stored"] if s["category"] == arrivals]
    assert series["counts"] == [2, 4]


@pytest.mark.parametrize("query, complaint", [
    ({"step": "30s"}, "minutes"),
    ({"step": "1m", "since": "2026-01-01T00:00:00", "until": "2026-01-03T00:00:00"}, "at most"),
    # Centuries in minute steps: refused at once, never listed (the fuzz found it hanging).
    ({"step": "1m", "since": "0001-01-01T00:00:00", "until": "9999-01-01T00:00:00"}, "at most"),
    ({"step": "soon"}, "positive number"),
    ({"since": "2026-01-02T00:00:00", "until": "2026-01-01T00:00:00"}, "after"),
    ({"since": "2026-01-01T00:00:10", "until": "2026-01-01T00:00:10"}, "empty"),
    ({"bucket": "1h"}, "Unknown"),
])
def test_a_bad_window_or_step_is_a_422_that_says_why(pg_app, pg_key, query, complaint):
    answer = volume(pg_app.test_client(), pg_key("read"), **query)
    assert answer.status_code == 422, answer.json
    assert complaint in str(answer.json), answer.json


def test_the_default_window_is_the_last_day_and_reading_needs_the_read_scope(pg_app, pg_key):
    client = pg_app.test_client()
    body = volume(client, pg_key("read")).json
    since, until = datetime.fromisoformat(body["since"]), datetime.fromisoformat(body["until"])
    # The last day, widened to whole minutes: the minute now running is in it.
    assert timedelta(hours=24) <= until - since <= timedelta(hours=24, minutes=1)
    assert until > datetime.now(UTC) - timedelta(seconds=5) and len(body["buckets"]) in (288, 289)
    assert volume(client, pg_key("ingest")).status_code == 403
    assert client.get("/api/v1/stats/volume").status_code == 401
