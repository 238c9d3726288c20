"""The ingest task: persist what the API accepted, then run the analyses on what is new."""

import logging

from celery import shared_task

from app.dashboard.broadcast import emit_mouse_metrics
from app.extensions import db
from app.messages import PERSIST_EVENTS_TASK
from app.observability.metrics import EVENTS_PERSISTED, MOUSE_METRICS_EMITTED, TASK_FAILURES, TASK_RETRIES
from app.storage.database_errors import is_transient
from app.storage.message import record_poison_message, store_message

log = logging.getLogger(__name__)


class DatabaseUnavailable(Exception):
    """The database could not be reached; the message stays in the broker and is retried."""


@shared_task(
    name=PERSIST_EVENTS_TASK,
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
        persisted = store_message(message)
    except Exception as exc:
        _reset_session()
        _retry_if_transient(self, exc)
        # It will fail the same way every time: keep it visible, and do not block the queue with it.
        log.exception("ingest message cannot be stored as a whole; storing its events one by one")
        TASK_FAILURES.labels(reason="poison").inc()
        try:
            record_poison_message(message)
        except Exception as poison_exc:
            _reset_session()
            _retry_if_transient(self, poison_exc)
            raise
    else:
        # Only after the commit: a live chart must never show what a rollback then took back.
        emit_mouse_metrics(persisted.mouse_metrics)
        EVENTS_PERSISTED.inc(len(persisted.new_events))
        MOUSE_METRICS_EMITTED.inc(len(persisted.mouse_metrics))
        log.info("persisted", extra={"task_id": self.request.id, "new_events": len(persisted.new_events),
                                     "retries": self.request.retries})


def _reset_session() -> None:
    """Roll back; on a connection the server cut, the rollback itself fails: drop the session."""
    try:
        db.session.rollback()
    except Exception:
        db.session.close()


def _retry_if_transient(task, exc: Exception) -> None:
    if is_transient(exc):
        TASK_RETRIES.inc()
        log.warning("database unavailable (%s), retrying (attempt %d)", type(exc).__name__, task.request.retries + 1)
        raise DatabaseUnavailable(str(exc)) from exc
