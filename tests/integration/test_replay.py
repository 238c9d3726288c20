"""Replaying recorded refusals after a schema was too strict: POST /api/v1/errors/replay and
`flask errors replay` (real PostgreSQL, RabbitMQ and worker)."""

import json
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from marshmallow import Schema, fields
from sqlalchemy import func, select

from app.event_types import launch_registry
from app.extensions import db
from app.ingest.replay import replay_event_id
from app.models import Event, Rejection
from tests.fixtures.apps import make_key_factory, migrated_app, wait_for

PURCHASE = ("checkout", "purchase")


class StrictPurchase(Schema):
    """Too strict: real clients send purchases without a coupon."""

    amount = fields.Integer(required=True)
    coupon = fields.String(required=True)


class FixedPurchase(Schema):
    amount = fields.Integer(required=True)
    coupon = fields.String()
    note = fields.String()


def app_with_purchase_schema(service_env, schema):
    """An app on the run's database and queue (the run's worker stores what it sends) whose registry
    holds `schema` for checkout / purchase."""
    app = migrated_app(**service_env)
    registry = launch_registry()
    registry.register(*PURCHASE, schema)
    app.extensions["event_types"] = registry
    return app


def purchase(session_id: str, **data) -> dict:
    return {"event_id": str(uuid.uuid4()), "session_id": session_id, "category": PURCHASE[0], "name": PURCHASE[1],
            "data": data, "timestamp": datetime.now(UTC).isoformat()}


def post(client, key, body, path="/api/v1/events"):
    return client.post(path, data=json.dumps(body), headers={"X-API-Key": key}, content_type="application/json")


def replay(client, key, **body):
    return client.post("/api/v1/errors/replay", data=json.dumps(body), headers={"X-API-Key": key},
                       content_type="application/json")


def stored(app, application: str) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Event).join_from(
            Event, db.metadata.tables["applications"], Event.application_id == db.metadata.tables["applications"].c.id)
            .where(db.metadata.tables["applications"].c.name == application))


def replay_marks(app, application: str) -> list:
    with app.app_context():
        return sorted((kind, outcome is not None, outcome) for kind, outcome in db.session.execute(
            select(Rejection.kind, Rejection.replay_outcome).join_from(
                Rejection, db.metadata.tables["applications"],
                Rejection.application_id == db.metadata.tables["applications"].c.id)
            .where(db.metadata.tables["applications"].c.name == application)))


@pytest.fixture
def refused(service_env, pg_worker):
    """Refusals of one application of its own: 3 purchases the strict schema refused (one without an
    event_id, one of 30 KiB), a clock an hour ahead, an unreadable body; and one good purchase."""
    strict = app_with_purchase_schema(service_env, StrictPurchase)
    application = f"replay-{uuid.uuid4().hex[:8]}"
    key = make_key_factory(strict)("ingest", "read", application=application)
    client = strict.test_client()
    session_id = str(uuid.uuid4())
    no_coupon = purchase(session_id, amount=10)
    no_event_id = {k: v for k, v in purchase(session_id, amount=20).items() if k != "event_id"}
    large = purchase(session_id, amount=30, note="x" * 30_000)
    ahead = {**purchase(session_id, amount=40, coupon="C"),
             "timestamp": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}
    for event in (no_coupon, no_event_id, large, ahead):
        assert post(client, key, event).status_code == 422
    assert post(client, key, purchase(session_id, amount=50, coupon="C")).status_code == 202
    bad_body = client.post("/api/v1/events", data=b'{"cut', headers={"X-API-Key": key},
                           content_type="application/json")
    assert bad_body.status_code == 400
    wait_for(lambda: len(replay_marks(strict, application)) == 5 and stored(strict, application) == 1)
    yield {"application": application, "key": key, "no_coupon": no_coupon, "large": large}
    strict.extensions["celery"].close()


@pytest.fixture
def fixed(service_env):
    app = app_with_purchase_schema(service_env, FixedPurchase)
    yield app
    app.extensions["celery"].close()


def test_a_large_refused_item_is_kept_whole(fixed, refused):
    with fixed.app_context():
        [raw] = db.session.scalars(select(Rejection.raw).where(
            Rejection.event_id == uuid.UUID(refused["large"]["event_id"]))).all()
    assert len(raw) > 30_000 and json.loads(raw) == refused["large"]


def test_dry_run_counts_and_changes_nothing_then_a_replay_stores_the_now_valid_once(fixed, refused):
    client = fixed.test_client()
    admin = make_key_factory(fixed)("admin")
    application = refused["application"]
    before = replay_marks(fixed, application)

    dry = replay(client, admin, application=application, dry_run=True)
    assert dry.status_code == 200, dry.json
    assert dry.json == {"dry_run": True, "matched": 5, "would_pass": 3, "still_failing": {"future_timestamp": 1},
                        "not_replayable": 1, "next_cursor": None}
    assert replay_marks(fixed, application) == before and stored(fixed, application) == 1

    done = replay(client, admin, application=application)
    assert done.status_code == 200, done.json
    assert (done.json["replayed"], done.json["still_failing"], done.json["not_replayable"]) == (
        3, {"future_timestamp": 1}, 1)
    wait_for(lambda: stored(fixed, application) == 4)
    assert replay_marks(fixed, application) == sorted([
        ("invalid_payload", True, "accepted")] * 3 + [("future_timestamp", True, "future_timestamp"),
                                                      ("malformed_json", True, "not_replayable")])
    # The item that had no event_id got one derived from its refusal; the others kept theirs.
    with fixed.app_context():
        refusal_id = db.session.scalar(select(Rejection.id).where(
            Rejection.kind == "invalid_payload", Rejection.event_id.is_(None),
            Rejection.application_id == select(db.metadata.tables["applications"].c.id).where(
                db.metadata.tables["applications"].c.name == application).scalar_subquery()))
    reader = refused["key"]
    for event_id in (refused["no_coupon"]["event_id"], replay_event_id(refusal_id)):
        status = client.get(f"/api/v1/events/{event_id}", headers={"X-API-Key": reader})
        assert status.status_code == 200 and len(status.json["stored"]) == 1, status.json
    not_replayed = client.get(f"/api/v1/errors?application={application}&replayed=false",
                              headers={"X-API-Key": reader}).json["items"]
    assert not_replayed == []

    # Replayed again: the same event_ids, so nothing more is stored.
    again = replay(client, admin, application=application)
    assert again.json["replayed"] == 3
    time.sleep(1.5)  # the worker's group wait and a commit: a duplicate would show now
    assert stored(fixed, application) == 4


def test_replay_needs_the_admin_scope_and_a_broker_down_changes_nothing(fixed, refused, service_env):
    client = fixed.test_client()
    application = refused["application"]
    assert replay(client, refused["key"], application=application).status_code == 403
    admin = make_key_factory(fixed)("admin")
    assert replay(client, admin, application=application, limit=0).status_code == 422
    # A filter PostgreSQL's text cannot hold is refused up front (schemathesis found it as a 500).
    nul = replay(client, admin, application="app\x00", dry_run=True)
    assert nul.status_code == 422 and "NUL" in str(nul.json)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    down = migrated_app(**{**service_env, "CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{closed}//"})
    down.extensions["event_types"] = fixed.extensions["event_types"]
    answer = replay(down.test_client(), make_key_factory(down)("admin"), application=application)
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert all(not marked for _, marked, _ in replay_marks(fixed, application))
    assert stored(fixed, application) == 1


def test_the_command_line_replays_with_the_same_counts(fixed, refused):
    runner = fixed.test_cli_runner()
    dry = runner.invoke(args=["errors", "replay", "--application", refused["application"], "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "5 matched; would pass 3; not replayable 1; still failing 1" in dry.output
    done = runner.invoke(args=["errors", "replay", "--application", refused["application"], "--batch", "2"])
    assert done.exit_code == 0, done.output
    assert "5 matched; replayed 3; not replayable 1; still failing 1" in done.output
    wait_for(lambda: stored(fixed, refused["application"]) == 4)
