"""A message the database refuses for good neither blocks the queue nor retries forever:
what can be stored is, the rest lands in the errors store with its reason."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from app.extensions import db
from app.messages import PERSIST_EVENTS_TASK, build_message, build_part
from app.models import Application, Event, Rejection
from tests.fixtures.apps import wait_for


def an_event(**changes) -> dict:
    return {"event_id": str(uuid.uuid4()), "session_id": str(uuid.uuid4()), "category": "page interaction",
            "name": "pageview", "data": {"host": "a.com", "path": "/"},
            "timestamp": "2021-01-01T00:00:00+00:00", **changes}


def publish(app, application_id: int, events: list[dict]) -> None:
    """Put a message on the queue as the API would, bypassing the API's own validation."""
    message = build_message([build_part(application_id, datetime.now(UTC), events, [])])
    app.extensions["celery"].send_task(PERSIST_EVENTS_TASK, args=[message])


def stored(app, event: dict) -> bool:
    with app.app_context():
        return db.session.scalar(select(Event.id).where(Event.event_id == uuid.UUID(event["event_id"]))) is not None


def rejections_for(app, event: dict) -> list[Rejection]:
    with app.app_context():
        return db.session.scalars(select(Rejection).where(Rejection.raw.contains(event["event_id"]))).all()


def test_a_refused_event_is_recorded_and_its_batch_mates_stored(pg_app, pg_worker, pg_key):
    pg_key("ingest", application="poison-sender")
    with pg_app.app_context():
        application_id = db.session.scalar(select(Application.id).where(Application.name == "poison-sender"))
    good, poison = an_event(), an_event(data={"host": "a.com", "path": "/", "note": "nul \x00 inside"})
    publish(pg_app, application_id, [good, poison])

    recorded = wait_for(lambda: rejections_for(pg_app, poison), timeout=20)
    assert [r.kind for r in recorded] == ["processing_failed"]
    assert "refused" in recorded[0].errors["_schema"][0] and recorded[0].application_id == application_id
    assert stored(pg_app, good) and not stored(pg_app, poison)


def test_an_unknown_application_is_recorded_not_retried_forever(pg_app, pg_worker):
    orphan = an_event()
    publish(pg_app, 987654321, [orphan])
    recorded = wait_for(lambda: rejections_for(pg_app, orphan), timeout=20)
    assert [(r.kind, r.application_id) for r in recorded] == [("processing_failed", None)]

    # The queue goes on: a later, valid message is processed.
    with pg_app.app_context():
        any_application = db.session.scalar(select(Application.id).limit(1))
    later = an_event()
    publish(pg_app, any_application, [later])
    wait_for(lambda: stored(pg_app, later), timeout=20)
    assert len(rejections_for(pg_app, orphan)) == 1
