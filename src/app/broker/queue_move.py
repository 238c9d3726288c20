"""Moves the ingest and upkeep queues of an existing deployment from classic to quorum queues.

RabbitMQ cannot change a queue's type in place, and both names must stay (web processes publish to
them, workers consume them). So, with the web processes and workers stopped, each queue is emptied
into a quorum queue beside it (`<name>.moving`), deleted, declared again as a quorum queue under its
name (bound to its exchange as Celery binds it), and refilled from `<name>.moving`, which is then
deleted. A message is acknowledged from its source only after the target confirmed it: a crash at
any point leaves every message in one of the two queues (one may be in both, which the workers store
once, as any redelivery), and running the command again finishes the move.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from amqp import Message
from amqp.exceptions import NotFound, PreconditionFailed
from kombu import Connection, Exchange, Queue

from app.config import queue_arguments

log = logging.getLogger(__name__)

HOLDING_SUFFIX = ".moving"
CONFIRM_TIMEOUT = 30.0


class QueueInUse(Exception):
    """A consumer (a worker still running) holds the queue: its unacknowledged messages cannot be moved."""


@dataclass
class QueueMove:
    name: str
    was: str  # "classic", "quorum" (nothing to do) or "absent" (declared new)
    moved: int = 0  # messages carried over


def move_to_quorum(connection: Connection, queues: list[Queue],
                   progress: Callable[[str, int], None] = lambda name, count: None) -> list[QueueMove]:
    """Make each of `queues` (Celery's declarations, with quorum arguments) a quorum queue, keeping its messages."""
    return [_move_queue(connection, queue, progress) for queue in queues]


def _move_queue(connection: Connection, queue: Queue, progress) -> QueueMove:
    holding = Queue(queue.name + HOLDING_SUFFIX, Exchange(""), routing_key=queue.name + HOLDING_SUFFIX,
                    queue_arguments=queue_arguments("quorum"))
    kind = queue_kind(connection, queue.name)
    report = QueueMove(queue.name, kind)
    if kind == "classic":
        channel = connection.channel()
        _, _, consumers = channel.queue_declare(queue.name, passive=True)
        if consumers:
            raise QueueInUse(f"{queue.name} has {consumers} consumer(s): stop the workers first.")
        holding(channel).declare()
        while True:
            report.moved += _carry(channel, queue.name, holding.name, progress)
            try:
                # Only if empty: a message a web process published meanwhile is carried on the next round.
                channel.queue_delete(queue.name, if_empty=True)
                break
            except PreconditionFailed:
                channel = connection.channel()
        log.info("moved %d message(s) of %s aside; declaring it as a quorum queue", report.moved, queue.name)
    channel = connection.channel()
    queue(channel).declare()  # as Celery declares it: quorum, bound to its exchange
    # Also finishes a move that an earlier run left half done.
    if queue_kind(connection, holding.name) != "absent":
        channel = connection.channel()
        _carry(channel, holding.name, queue.name, progress)
        # Quorum queues cannot be deleted "if empty"; nothing but this command writes to this one.
        if channel.queue_declare(holding.name, passive=True).message_count == 0:
            channel.queue_delete(holding.name)
    return report


def queue_kind(connection: Connection, name: str) -> str:
    """`absent`, `quorum` or `classic` (any queue that is not a quorum queue)."""
    channel = connection.channel()
    try:
        channel.queue_declare(name, passive=True)
    except NotFound:
        return "absent"
    # Declaring an existing queue with other arguments than its own fails: so it is a quorum queue
    # exactly when a declaration as one passes. (Not passive: a passive one ignores the arguments.)
    channel = connection.channel()
    try:
        channel.queue_declare(name, durable=True, auto_delete=False, arguments=queue_arguments("quorum"))
        return "quorum"
    except PreconditionFailed:
        return "classic"


def _carry(channel, source: str, target: str, progress) -> int:
    """Move every message of `source` to `target`, each acknowledged after the target confirmed it."""
    moved = 0
    while True:
        message = channel.basic_get(source, no_ack=False)
        if message is None:
            return moved
        properties = {**message.properties, "delivery_mode": 2}
        channel.basic_publish(Message(message.body, **properties), exchange="", routing_key=target,
                              confirm_timeout=CONFIRM_TIMEOUT)
        channel.basic_ack(message.delivery_tag)
        moved += 1
        progress(source, moved)
