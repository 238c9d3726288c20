"""A task's group-mates: ingest messages taken from the queue to be stored in the same transaction.

A worker paid a whole task, transaction and set of round trips for each message, and under
single-event traffic a message carries one or two events. So the ingest task, once it holds its own
message, takes the messages waiting behind it in the queue (basic_get on a channel of its process,
not acknowledged), up to EYE_WORKER_GROUP_MESSAGES messages and MAX_GROUP_EVENTS events, stores
them all in one transaction, and acknowledges them after the commit. If the queue runs dry before
the group is full, the task waits for more for at most EYE_WORKER_GROUP_WAIT_MS after it started,
as a consumer on the reader's channel so that RabbitMQ pushes what arrives (polling with basic_get
cost a round trip and broker work every 20 ms of every wait). At an ordinary steady rate a message
arrives every few milliseconds, each would otherwise be a task and a transaction of its own, and
the wait is paid by the storage lag only, never by the client, whose 202 came with the broker's
confirm. A group holding a mouse move waits EYE_WORKER_MOUSE_WAIT_MS at most (a live chart is
waiting for its metrics): long enough that under many live pages one transaction folds several
batches (a transaction of one batch cost PostgreSQL and the worker more than twice as much per batch
as one of four), short next to the 250 ms between a page's batches. A backlog fills the group at
once; EYE_WORKER_GROUP_WAIT_MS=0 stores what is waiting and nothing more.

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

from kombu import Connection, Consumer, Queue
from kombu.message import Message

from app.broker import connect, is_rabbitmq
from app.messages import PERSIST_EVENTS_TASK, build_message, parts_of
from app.mouse_geometry import MOUSE_MOVE
from tasks.serialization import ORJSON

log = logging.getLogger(__name__)

ACCEPT = [ORJSON, "json"]

# The events one transaction may hold at most (a bounded buffer, a bounded transaction).
MAX_GROUP_EVENTS = 5000


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

    def __init__(self, broker_url: str, queue_name: str, limit: int, wait_seconds: float = 0.0,
                 mouse_wait_seconds: float = 0.0):
        self.owner_pid = os.getpid()
        self.broker_url = broker_url
        self.queue_name = queue_name
        self.limit = limit
        self.wait_seconds = wait_seconds
        self.mouse_wait_seconds = mouse_wait_seconds  # never beyond wait_seconds: _Taking takes the earlier
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
        started = time.monotonic()
        taking = _Taking(group, self.limit, _event_count(first), started + self.wait_seconds,
                         started + self.mouse_wait_seconds)
        taking.note_kind(first)
        try:
            queue = self._bound_queue()
            # What is already queued, one basic_get at a time (no consumer is needed for a backlog).
            while taking.has_room():
                message = queue.get(no_ack=False, accept=ACCEPT)
                if message is None:
                    break
                taking.take(message)
            if taking.has_room() and taking.deadline > time.monotonic():
                self._receive(taking)
        except Exception as exc:
            # Taking is an optimisation: on any broker trouble the task stores its own message alone.
            log.warning("could not take waiting ingest messages (%s); storing this one alone", type(exc).__name__)
            group.give_back()
            self.close()
        return group

    def _receive(self, taking: "_Taking") -> None:
        """Consume the queue until the group's deadline or a full group, then cancel.

        The consumer's prefetch is the room left, so RabbitMQ never hands this channel more than the
        group may hold; a message delivered while the cancel is on its way is taken if there is room
        and given back if not (py-amqp itself rejects, with requeue, one that arrives after it).
        """
        consumer = Consumer(self._queue.channel,
                            queues=[self._queue], accept=ACCEPT, no_ack=False,
                            prefetch_count=taking.room(), on_message=taking.take)
        consumer.consume()
        try:
            while taking.has_room():
                left = taking.deadline - time.monotonic()  # a mouse move taken brings it forward
                if left <= 0:
                    break
                try:
                    self._connection.drain_events(timeout=left)
                except TimeoutError:
                    break
        finally:
            # Deliveries in flight before the cancel's answer still reach taking.take (room decides).
            consumer.cancel()

    def _bound_queue(self) -> Queue:
        if self._queue is None:
            # A cluster URL: the first node that answers (app.broker.connect tries each in turn).
            self._connection = connect(Connection(self.broker_url, connect_timeout=2), timeout=2)
            # Taken from an existing queue (basic_get, or a consumer while waiting): never declared
            # here, so its arguments are Celery's.
            self._queue = Queue(self.queue_name, no_declare=True)(self._connection.channel())
        return self._queue

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:
                pass
        self._connection = self._queue = None


class _Taking:
    """Adds the messages the broker hands over to a group while it has room; gives back the others."""

    def __init__(self, group: MessageGroup, limit: int, events: int, deadline: float, mouse_deadline: float):
        self.group = group
        self.limit = limit
        self.events = events
        self.deadline = deadline
        self.mouse_deadline = mouse_deadline
        self.closed = False  # a message of another kind came: nothing more is taken

    def note_kind(self, body: dict) -> None:
        """A mouse move's metrics are awaited by a live chart: the group waits less for its mates."""
        if _carries_mouse_moves(body):
            self.deadline = min(self.deadline, self.mouse_deadline)

    def room(self) -> int:
        return max(0, self.limit - 1 - len(self.group.taken))

    def has_room(self) -> bool:
        return not self.closed and self.room() > 0 and self.events < MAX_GROUP_EVENTS

    def take(self, message: Message) -> None:
        if not self.has_room():
            message.requeue()
            return
        body = _ingest_message(message)
        if body is None:
            message.requeue()  # not an ingest task: left for Celery's own consumer
            self.closed = True
            return
        self.group.taken.append((body, message))
        self.events += _event_count(body)
        self.note_kind(body)


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
