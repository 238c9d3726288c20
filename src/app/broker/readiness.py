"""Is the broker ready to take events? Asked the only way that answers it: publish and be confirmed.

A TCP connection to some node proves little in a cluster: with quorum queues, a node that lost its
majority still accepts connections, but cannot confirm a message, so the API would answer 503 while a
connect-only probe said "ready". So the probe does what an ingest request does, on a queue of its
own beside the ingest queue (same type, one message at most, nothing consumes it): declare, publish a
persistent message, wait for the publisher confirm within EYE_PUBLISH_TIMEOUT. It also declares the
ingest queue as the web processes do, so a queue of the wrong type (a classic queue left from before
EYE_QUEUE_TYPE=quorum) shows here, named, rather than as 503s without a reason.
"""

import time
from threading import Lock

from amqp.exceptions import PreconditionFailed
from flask import current_app
from kombu import Exchange, Queue

from app.broker import connect, declare_queue, is_rabbitmq
from app.config import queue_arguments

QUEUE_TYPE_MISMATCH = "queue_type_mismatch"


def broker_problem() -> str | None:
    """None when a message was confirmed; otherwise what went wrong, in a word.

    The answer is kept for EYE_READINESS_CACHE_SECONDS per process: /readyz needs no key, and each
    probe is a connection and a write replicated to the cluster's nodes, so however often it is
    asked (a balancer every few seconds, or anyone) the broker sees one probe a second at most.
    """
    cache = current_app.extensions.setdefault("eye_readiness", {"at": None, "answer": None, "lock": Lock()})
    with cache["lock"]:  # one probe at a time per process; the others wait for its answer
        now = time.monotonic()
        if cache["at"] is None or now - cache["at"] >= current_app.config["EYE_READINESS_CACHE_SECONDS"]:
            cache["answer"], cache["at"] = _probe(), time.monotonic()
        return cache["answer"]


def _probe() -> str | None:
    config = current_app.config
    celery = current_app.extensions["celery"]
    timeout = config["EYE_PUBLISH_TIMEOUT"]
    rabbitmq = is_rabbitmq(celery.conf.broker_url)
    # A read that takes longer than the timeout (a declare on a node without its majority) fails too.
    # (The embedded broker is a folder: its connection is all there is to check.)
    connection = celery.connection_for_write(transport_options={"read_timeout": timeout}) if rabbitmq \
        else celery.connection_for_write()
    try:
        connect(connection, timeout)
        if not rabbitmq:
            return None
        channel = connection.channel()
        try:
            declare_queue(celery.amqp.queues[config["EYE_QUEUE"]], channel)
        except PreconditionFailed:
            return QUEUE_TYPE_MISMATCH
        probe = readiness_queue(config)
        probe(channel).declare()
        message = channel.prepare_message(b"ready?", 0, "text/plain", "utf-8", {}, {"delivery_mode": 2})
        channel.basic_publish(message, exchange="", routing_key=probe.name, confirm_timeout=timeout)
        return None
    except Exception as exc:
        return type(exc).__name__
    finally:
        try:
            connection.close()
        except Exception:
            pass


def readiness_queue(config) -> Queue:
    """The probe's queue: of the ingest queue's type, holding one message at most (the newest)."""
    return Queue(config["EYE_READINESS_QUEUE"], Exchange(""), routing_key=config["EYE_READINESS_QUEUE"],
                 queue_arguments={**queue_arguments(config["EYE_QUEUE_TYPE"]), "x-max-length": 1})
