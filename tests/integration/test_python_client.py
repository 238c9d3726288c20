"""eye_client against the real service: every tracked event is stored exactly once."""

import uuid

from eye_client import EyeClient
from sqlalchemy import func, select

from app.extensions import db
from app.models import Event
from tests.fixtures.apps import wait_for


def test_client_events_reach_postgresql_once(pg_app, pg_worker, pg_key, service_env, start_web_process):
    _, url = start_web_process(service_env)
    session_id = str(uuid.uuid4())
    client = EyeClient(url, pg_key("ingest"), batch_size=25, flush_interval=0.1)
    ids = [client.track(session_id, "page interaction", "pageview", {"host": "shop.example.com", "path": f"/p/{i}"})
           for i in range(120)]
    assert client.flush(timeout=20) is True
    assert client.dropped == 0
    client.shutdown(timeout=5)

    def stored():
        with pg_app.app_context():
            return db.session.scalar(select(func.count()).select_from(Event)
                                     .where(Event.session_id == uuid.UUID(session_id)))
    wait_for(lambda: stored() == len(ids), timeout=30)
    with pg_app.app_context():
        stored_ids = db.session.scalars(select(Event.event_id).where(Event.session_id == uuid.UUID(session_id))).all()
    assert sorted(map(str, stored_ids)) == sorted(ids)
