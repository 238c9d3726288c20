"""A worker SIGKILLed while it holds a batch loses nothing and duplicates nothing."""

import json
import uuid

import pytest
from sqlalchemy import create_engine, func, select, text

from app.extensions import db
from app.models import Event, Session
from tests.fixtures.apps import make_key_factory, migrated_app, wait_for
from tests.fixtures.services import delete_broker_entities


@pytest.fixture
def kill_env(service_env, run_id, broker_url):
    """The run's database with a queue of its own, so the in-process test worker never takes these."""
    queue = f"eye_test_kill_{run_id}_{uuid.uuid4().hex[:6]}"
    yield {**service_env, "EYE_QUEUE": queue}
    delete_broker_entities(broker_url, [queue], [queue])


def test_worker_killed_mid_batch_then_replaced_stores_each_event_once(
    kill_env, start_worker_process, sample
):
    app = migrated_app(**kill_env)
    key = make_key_factory(app)("ingest")
    client = app.test_client()
    session_ids = [str(uuid.uuid4()) for _ in range(5)]
    accepted = []
    for batch in range(20):
        events = [{**sample("pageview"), "session_id": session_ids[(batch + i) % 5],
                   "event_id": str(uuid.uuid4()), "timestamp": f"2021-01-01 10:{batch:02d}:{i:02d}"}
                  for i in range(10)]
        response = client.post("/api/v1/events/batch", data=json.dumps({"events": events}),
                               headers={"X-API-Key": key}, content_type="application/json")
        assert response.status_code == 202
        accepted += response.json["event_ids"]

    # Hold the sessions table so the worker blocks inside its transaction, holding its message.
    blocker = create_engine(kill_env["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg2://"))
    with blocker.connect() as lock:
        lock.execute(text("LOCK TABLE sessions IN EXCLUSIVE MODE"))
        worker = start_worker_process(kill_env)
        wait_for(lambda: lock.execute(text(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE c.relname = 'sessions' AND NOT l.granted")).scalar() >= 1, timeout=30)
        worker.kill()
        lock.rollback()
    blocker.dispose()

    start_worker_process(kill_env)
    with app.app_context():
        def stored():
            return db.session.scalar(select(func.count()).select_from(Event)
                                     .where(Event.event_id.in_([uuid.UUID(i) for i in accepted])))
        wait_for(lambda: stored() == len(accepted), timeout=60)
        assert db.session.scalar(select(func.count()).select_from(Event).where(
            Event.session_id.in_([uuid.UUID(s) for s in session_ids]))) == len(accepted)
        counts = db.session.scalars(select(Session.event_count).where(
            Session.session_id.in_([uuid.UUID(s) for s in session_ids]))).all()
        assert sorted(counts) == [40] * 5
