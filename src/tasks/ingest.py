"""The ingest task: persist what the API accepted, then run the analyses on what is new."""

import logging

from celery import shared_task
from sqlalchemy.exc import DBAPIError, OperationalError

from app.extensions import db
from app.services.persistence import persist_batch, record_poison_message

log = logging.getLogger(__name__)


class DatabaseUnavailable(Exception):
    """The database could not be reached; the message stays in the broker and is retried."""


@shared_task(
    name="eye.persist_events",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(DatabaseUnavailable,),
    retry_backoff=1,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=None,  # a database outage may last; the events wait in RabbitMQ meanwhile
)
def persist_events(self, message: dict) -> None:
    """Persist one ingest message; running it twice stores nothing twice."""
    try:
        persist_batch(message)
    except (OperationalError, DBAPIError) as exc:
        db.session.rollback()
        if _is_connection_problem(exc):
            log.warning("database unavailable, retrying (attempt %d)", self.request.retries + 1)
            raise DatabaseUnavailable(str(exc.orig)) from exc
        # Anything else will fail the same way every time: keep it visible, do not block the queue.
        log.exception("ingest message cannot be stored; recording it as poison")
        record_poison_message(message, exc)


def _is_connection_problem(exc: DBAPIError) -> bool:
    return bool(exc.connection_invalidated) or isinstance(exc, OperationalError) and (
        "could not connect" in str(exc) or "server closed" in str(exc)
        or "terminating connection" in str(exc) or "Connection refused" in str(exc)
        or "database is locked" in str(exc) or "the database system is" in str(exc)
    )
