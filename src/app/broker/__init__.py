"""The RabbitMQ side of The Eye beyond publishing: connecting to a cluster, readiness, moving queues."""

import logging

from amqp.exceptions import PreconditionFailed
from kombu import Connection, Queue

log = logging.getLogger(__name__)


def is_rabbitmq(broker_url: str | None) -> bool:
    """Whether the broker URL names RabbitMQ (rather than the embedded folder broker)."""
    return str(broker_url or "").startswith(("amqp", "pyamqp"))


def declare_queue(queue: Queue, channel) -> None:
    """Declare one of our queues as Celery does; a queue of another type is logged with the way out
    (PreconditionFailed is raised on)."""
    try:
        queue(channel).declare()
    except PreconditionFailed:
        log.error("the queue %s exists with another type than EYE_QUEUE_TYPE asks: see README, "
                  "\"Moving a classic queue to a quorum queue\"", queue.name)
        raise


def connect(connection: Connection, timeout: float) -> Connection:
    """Connect to the first node of the broker URL that answers, within `timeout` seconds in all.

    The URL may list a cluster's nodes in kombu's failover form (`amqp://a//;amqp://b//;…`): each
    node is tried once, in turn, without kombu's default 2 s pause between attempts, so a node that
    refuses costs nothing (a pause of 0.1 s at most) and a cluster with one node down is still reached at once.
    """
    # One retry per node listed (at least one: it revives a connection dropped while idle).
    retries = max(1, len(connection.alt))
    connection.ensure_connection(max_retries=retries, interval_start=0, interval_step=0.1, interval_max=0.1,
                                 timeout=timeout)
    return connection
