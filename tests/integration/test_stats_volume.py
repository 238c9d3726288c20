"""GET /api/v1/stats/volume: stored events per type and refusals per kind, per step of arrival."""

import itertools
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from app.extensions import db
from app.identity import keys
from app.messages import build_message, build_part, rejection_record
from app.queries.volume import volume_window
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


# --- Steps of whole hours: arrival_counts_hourly ----------------------------------------------

# Five days back and before, hours of their own for each test (two days apart): no other traffic arrives in them.
FIVE_DAYS_BACK = (datetime.now(UTC) - timedelta(days=5)).replace(minute=0, second=0, microsecond=0)
spreads = itertools.count()


@pytest.fixture
def spread(pg_app):
    """Stored events of two types of this test's own, and refusals of two kinds, over three hours of
    arrival of its own (at their first and last minutes too); returns (category, the first hour)."""
    category = f"volume-{uuid.uuid4().hex[:8]}"
    first = FIVE_DAYS_BACK - timedelta(days=2 * next(spreads))
    with pg_app.app_context():
        application_id = keys.get_or_create_application(category).id
        for i, minute in enumerate((0, 1, 14, 59, 60, 61, 95, 119, 120, 150, 179)):
            at = first + timedelta(minutes=minute, seconds=5 * i)
            events = [pageview(category, "view" if n % 3 else "click") for n in range(1 + i % 4)]
            refusals = [rejection_record(application_id, "invalid_payload" if n % 2 else "future_timestamp",
                                         {"data": ["bad"]}, {"x": n}, at, category, "view") for n in range(i % 3)]
            store_message(build_message([build_part(application_id, at, events, refusals)]))
    return category, first


def per_series(body: dict) -> dict:
    """An answer's series by key: (category, name) for stored events, the kind for refusals."""
    return {**{(s["category"], s["name"]): s["counts"] for s in body["stored"]},
            **{s["kind"]: s["counts"] for s in body["refused"]}}


def folded(counts: list[int], width: int) -> list[int]:
    return [sum(counts[i:i + width]) for i in range(0, len(counts), width)]


def test_hour_steps_read_the_hourly_rollup_and_count_as_the_minutes_do(pg_app, pg_key, spread):
    category, first = spread
    client, key = pg_app.test_client(), pg_key("read")
    window = {"since": first.isoformat(), "until": (first + timedelta(hours=3)).isoformat()}
    hours = volume(client, key, step="1h", **window).json
    minutes = volume(client, key, step="1m", **window).json
    fives = volume(client, key, step="5m", **window).json
    assert len(hours["buckets"]) == 3 and len(minutes["buckets"]) == 180 and len(fives["buckets"]) == 36
    by_hour = per_series(hours)
    assert set(by_hour) == {(category, "view"), (category, "click"), "invalid_payload", "future_timestamp"}
    assert by_hour == {k: folded(v, 60) for k, v in per_series(minutes).items()}
    assert by_hour == {k: folded(v, 12) for k, v in per_series(fives).items()}
    assert sum(by_hour[(category, "view")]) + sum(by_hour[(category, "click")]) == sum(1 + i % 4 for i in range(11))
    assert sum(by_hour["invalid_payload"]) + sum(by_hour["future_timestamp"]) == sum(i % 3 for i in range(11))

    # The 1h answer is the hourly rollup's rows; the 5m one the minutes'.
    with pg_app.app_context():
        assert volume_window(first, first + timedelta(hours=3), timedelta(hours=1)).hourly
        assert not volume_window(first, first + timedelta(hours=3), timedelta(minutes=5)).hourly
        stored = db.session.execute(text(
            "SELECT hour, count FROM arrival_counts_hourly WHERE outcome = 'stored' AND category = :c AND name = 'view' "
            "ORDER BY 1"),
            {"c": category}).all()
    assert [count for _, count in stored] == by_hour[(category, "view")]
    assert [hour for hour, _ in stored] == [first + timedelta(hours=i) for i in range(3)]


def test_hour_steps_widen_the_window_to_whole_utc_hours(pg_app, pg_key, spread):
    category, first = spread
    client, key = pg_app.test_client(), pg_key("read")
    whole = per_series(volume(client, key, step="1h", since=first.isoformat(),
                              until=(first + timedelta(hours=3)).isoformat()).json)

    # 00:20 to 02:05 in 1h steps: 00:00 to 03:00, the same three hours.
    body = volume(client, key, step="1h", since=(first + timedelta(minutes=20)).isoformat(),
                  until=(first + timedelta(hours=2, minutes=5)).isoformat()).json
    assert (datetime.fromisoformat(body["since"]), datetime.fromisoformat(body["until"])) == (
        first, first + timedelta(hours=3))
    assert [datetime.fromisoformat(b) for b in body["buckets"]] == [first + timedelta(hours=i) for i in range(3)]
    assert per_series(body) == whole

    # An offset of half an hour: still UTC hours. And an `until` on the hour is not widened.
    india = timezone(timedelta(hours=5, minutes=30))
    body = volume(client, key, step="1h", since=(first + timedelta(minutes=20)).astimezone(india).isoformat(),
                  until=(first + timedelta(hours=3)).astimezone(india).isoformat()).json
    assert (datetime.fromisoformat(body["since"]), datetime.fromisoformat(body["until"])) == (
        first, first + timedelta(hours=3))
    assert per_series(body) == whole

    # A day step is whole hours too: the window runs from its first hour to the end of its last.
    body = volume(client, key, step="1d", since=(first + timedelta(minutes=20)).isoformat(),
                  until=(first + timedelta(days=1, minutes=20)).isoformat()).json
    assert (datetime.fromisoformat(body["since"]), datetime.fromisoformat(body["until"])) == (
        first, first + timedelta(days=1, hours=1))
    assert len(body["buckets"]) == 2
    assert per_series(body) == {k: [sum(v), 0] for k, v in whole.items()}

    # Steps that are not whole hours keep the minute as the unit.
    body = volume(client, key, step="90m", since=(first + timedelta(minutes=20, seconds=30)).isoformat(),
                  until=(first + timedelta(hours=2, minutes=5)).isoformat()).json
    assert (datetime.fromisoformat(body["since"]), datetime.fromisoformat(body["until"])) == (
        first + timedelta(minutes=20), first + timedelta(hours=2, minutes=5))
