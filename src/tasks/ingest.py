"""The ingest task: persist what the API accepted, then run the analyses on what is new.

Each task stores its own message together with the messages waiting behind it, in one
transaction (tasks/grouping.py).
"""

import logging
import os
import threading

from celery import shared_task
from flask import current_app

from app.dashboard.broadcast import emit_mouse_metrics
from app.extensions import db
from app.messages import PERSIST_EVENTS_TASK
from app.observability.metrics import (
    EVENTS_PERSISTED,
    MOUSE_METRICS_EMITTED,
    STORED_GROUP_MESSAGES,
    TASK_FAILURES,
    TASK_RETRIES,
)
from app.storage.database_errors import is_transient
from app.storage.message import record_poison_message, store_message
from tasks.grouping import MessageGroup, QueueReader

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
    """Persist one ingest message and those waiting behind it; running it twice stores nothing twice."""
    group = _queue_reader(self.app).gather(message)
    try:
        persisted = store_message(group.merged())
    except Exception as exc:
        _reset_session()
        if is_transient(exc):
            group.give_back()
            _retry_if_transient(self, exc)
        # One of them fails the same way every time: store them one by one, so it alone is set aside.
        log.exception("an ingest group cannot be stored as a whole; storing its messages one by one")
        _store_one_by_one(self, group)
        return
    messages = len(group.messages)
    group.acknowledge()  # after the commit, never before
    _after_commit(self, persisted, messages=messages)


def _store_one_by_one(task, group: MessageGroup) -> None:
    """Each message of a failed group in its own transaction; a poison one is recorded, not retried."""
    pending = list(group.taken)
    for body in group.messages:
        taken = pending.pop(0) if body is not group.first else None
        try:
            persisted = store_message(body)
        except Exception as exc:
            _reset_session()
            if is_transient(exc):
                MessageGroup(group.first, ([taken] if taken else []) + pending).give_back()
                if body is group.first:
                    _retry_if_transient(task, exc)
                return  # the first is stored; the rest went back to the queue
            TASK_FAILURES.labels(reason="poison").inc()
            try:
                record_poison_message(body)
            except Exception as poison_exc:
                _reset_session()
                MessageGroup(group.first, ([taken] if taken else []) + pending).give_back()
                if body is group.first:
                    _retry_if_transient(task, poison_exc)
                    raise
                return
        else:
            _after_commit(task, persisted, messages=1)
        if taken:
            taken[1].ack()


def _after_commit(task, persisted, messages: int) -> None:
    # Only after the commit: a live chart must never show what a rollback then took back.
    emit_mouse_metrics(persisted.mouse_metrics)
    EVENTS_PERSISTED.inc(len(persisted.new_events))
    MOUSE_METRICS_EMITTED.inc(len(persisted.mouse_metrics))
    STORED_GROUP_MESSAGES.observe(messages)
    log.info("persisted", extra={"task_id": task.request.id, "new_events": len(persisted.new_events),
                                 "messages": messages, "retries": task.request.retries})


# One reader (one broker channel) per thread that runs tasks: a prefork pool process has one, a
# threads pool several, and a channel is not to be shared between threads. Made on first use, so
# in the pool process, after the fork.
_readers = threading.local()


def _queue_reader(celery_app) -> QueueReader:
    reader = getattr(_readers, "reader", None)
    if reader is None or reader.owner_pid != os.getpid():
        config = current_app.config
        reader = _readers.reader = QueueReader(
            celery_app.conf.broker_url, config["EYE_QUEUE"], config["EYE_WORKER_GROUP_MESSAGES"],
            config["EYE_WORKER_GROUP_WAIT_MS"] / 1000, config["EYE_WORKER_MOUSE_WAIT_MS"] / 1000)
    return reader


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
