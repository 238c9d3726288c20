"""Hands work to the broker, and answers only once the broker has confirmed it holds it."""

import logging

from flask import current_app

log = logging.getLogger(__name__)

PERSIST_EVENTS_TASK = "eye.persist_events"


class BrokerUnavailable(Exception):
    """The broker could not confirm the message in time: nothing may be promised to the client."""


def publish_batch(message: dict) -> None:
    """Publish one ingest message (accepted events and rejections) with publisher confirms."""
    celery = current_app.extensions["celery"]
    timeout = current_app.config["EYE_PUBLISH_TIMEOUT"]
    try:
        celery.send_task(
            PERSIST_EVENTS_TASK,
            args=[message],
            # One reconnection attempt revives a connection the broker dropped while idle; a broker
            # that is down fails it at once (refused) or within `timeout`: never a hang.
            retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1},
            timeout=timeout,
            confirm_timeout=timeout,
        )
    except Exception as exc:  # kombu/amqp raise many kinds: all mean "not confirmed"
        log.warning("broker did not confirm an ingest message: %s", type(exc).__name__)
        raise BrokerUnavailable(str(exc)) from exc
