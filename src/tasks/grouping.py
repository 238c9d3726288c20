"""A task's group-mates: ingest messages taken from the queue to be stored in the same transaction.

A worker paid a whole task, transaction and set of round trips for each message, and under
single-event traffic a message carries one or two events. So the ingest task, once it holds its own
message, takes the messages waiting behind it in the queue (basic_get on a channel of its process,
not acknowledged), up to EYE_WORKER_GROUP_MESSAGES messages and MAX_GROUP_EVENTS events, stores
them all in one transaction, and acknowledges them after the commit. If the queue runs dry before
the group is full, the task waits for more for at most EYE_WORKER_GROUP_WAIT_MS after it started
(polling the queue): at an ordinary steady rate a message arrives every few milliseconds, each
would otherwise be a task and a transaction of its own, and the wait is paid by the storage lag
only, never by the client, whose 202 came with the broker's confirm. A group holding a mouse move
does not wait (a live chart is waiting for its metrics: it takes only what is already queued). A
backlog fills the group at once; EYE_WORKER_GROUP_WAIT_MS=0 stores what is waiting and nothing more.

Guarantees kept: a message is acknowledged only after the commit that stored it; a worker killed
before that drops its broker connection, and RabbitMQ redelivers every message of the group (the
unique keys then store nothing twice); a group that the database refuses as a whole is stored
message by message, so a poison message is isolated without its group-mates.

Only on RabbitMQ: the embedded folder transport removes a message's file when it is read, so a
message taken and not yet acknowledged would be lost with a killed worker.
"""

import logging
import os
import time
from dataclasses import dataclass, field

from kombu import Connection, Queue
from kombu.message import Message

from app.broker import connect, is_rabbitmq
from app.messages import PERSIST_EVENTS_TASK, build_message, parts_of
from app.mouse_geometry import MOUSE_MOVE
from tasks.serialization import ORJSON

log = logging.getLogger(__name__)

# The events one transaction may hold at most (a bounded buffer, a bounded transaction).
MAX_GROUP_EVENTS = 5000
# How often a waiting task looks at the queue again: each look is a round trip to the broker.
POLL_SECONDS = 0.02


@dataclass
class MessageGroup:
    """The task's own message first, then the messages taken from the queue for its transaction."""

    first: dict
    taken: list[tuple[dict, Message]] = field(default_factory=list)

    @property
    def messages(self) -> list[dict]:
        return [self.first] + [body for body, _ in self.taken]

    def merged(self) -> dict:
        """One message holding every part of the group, stored in one transaction."""
        if not self.taken:
            return self.first
        return build_message([part for message in self.messages for part in parts_of(message)])

    def acknowledge(self) -> None:
        """After the commit: the taken messages leave the queue (the task's own is Celery's to ack).

        One frame for the group: every taken message is on the reader's channel, which holds no
        other unacknowledged message (a message given back or left for Celery was rejected).
        """
        if self.taken:
            self.taken[-1][1].ack(multiple=True)
        self.taken = []

    def give_back(self) -> None:
        """Without a commit: the taken messages go back to the queue, for any worker."""
        for _, message in self.taken:
            try:
                message.requeue()
            except Exception:  # the channel is gone: RabbitMQ requeues its unacked messages anyway
                log.warning("a taken ingest message could not be given back; the broker will redeliver it")
        self.taken = []


class QueueReader:
    """One per task-running thread of a worker: its own broker channel to take waiting ingest messages."""

    def __init__(self, broker_url: str, queue_name: str, limit: int, wait_seconds: float = 0.0):
        self.owner_pid = os.getpid()
        self.broker_url = broker_url
        self.queue_name = queue_name
        self.limit = limit
        self.wait_seconds = wait_seconds
        self._connection: Connection | None = None
        self._queue: Queue | None = None

    @property
    def enabled(self) -> bool:
        return self.limit > 1 and is_rabbitmq(self.broker_url)

    def gather(self, first: dict) -> MessageGroup:
        """The task's message, with the ingest messages waiting behind it or arriving within the wait."""
        group = MessageGroup(first)
        if not self.enabled:
            return group
        deadline = time.monotonic() + self.wait_seconds
        events = _event_count(first)
        may_wait = not _carries_mouse_moves(first)
        try:
            queue = self._bound_queue()
            while len(group.taken) + 1 < self.limit and events < MAX_GROUP_EVENTS:
                message = queue.get(no_ack=False, accept=[ORJSON, "json"])
                if message is None:
                    left = deadline - time.monotonic()
                    if not may_wait or left <= 0:
                        break
                    time.sleep(min(POLL_SECONDS, left))
                    continue
                body = _ingest_message(message)
                if body is None:
                    message.requeue()  # not an ingest task: left for Celery's own consumer
                    break
                group.taken.append((body, message))
                events += _event_count(body)
                may_wait = may_wait and not _carries_mouse_moves(body)
        except Exception as exc:
            # Taking is an optimisation: on any broker trouble the task stores its own message alone.
            log.warning("could not take waiting ingest messages (%s); storing this one alone", type(exc).__name__)
            group.give_back()
            self.close()
        return group

    def _bound_queue(self) -> Queue:
        if self._queue is None:
            # A cluster URL: the first node that answers (app.broker.connect tries each in turn).
            self._connection = connect(Connection(self.broker_url, connect_timeout=2), timeout=2)
            # Only basic_get on an existing queue: never declared here, so its arguments are Celery's.
            self._queue = Queue(self.queue_name, no_declare=True)(self._connection.channel())
        return self._queue

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:
                pass
        self._connection = self._queue = None


def _ingest_message(message: Message) -> dict | None:
    """The ingest message a Celery task message carries; None if it is some other task, or not an
    ingest message this worker reads (Celery then delivers it to a task of its own, which records it)."""
    if (message.headers or {}).get("task") != PERSIST_EVENTS_TASK:
        return None
    try:
        args, _kwargs, _embed = message.decode()
        parts_of(args[0])
    except Exception:
        return None
    return args[0]


def _carries_mouse_moves(message: dict) -> bool:
    try:
        return any((event.get("category"), event.get("name")) == MOUSE_MOVE
                   for part in parts_of(message) for event in part.get("events", []))
    except Exception:
        return False


def _event_count(message: dict) -> int:
    try:
        return sum(len(part.get("events", [])) for part in parts_of(message))
    except Exception:
        return 0
