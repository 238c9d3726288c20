"""Hands work to the broker, and answers only once the broker has confirmed it holds it.

Request threads do not publish themselves: they hand their part to one publisher thread per
process, which sends everything waiting as ONE message and waits for ONE publisher confirm, then
releases all of those requests at once. Under load that turns hundreds of confirm round trips (and
hundreds of worker tasks) into a few; when idle a part goes out at once, with no added delay.

Each request encodes its own part, in its own thread, before handing it over: the merged message
only splices those bytes together (orjson.Fragment). So a part that cannot be encoded fails alone,
before it reaches the merge, and can never fail the other requests' parts of the same message.

On RabbitMQ the publisher thread sends through a confirm channel of its own (ConfirmedSender): the
message is Celery's own task message (`amqp.as_task_v2`, the worker reads it as any task), written
without Celery's and kombu's per-publish machinery (option merging, the ensure/retry wrapper, the
producer pool), which cost 2.7 times the CPU of the send itself (profiled: 1.18 against 0.43 ms of
CPU per message, a third of a single-event POST's CPU). Other brokers (the embedded folder
transport) go through `send_task`.
"""

import logging
import queue
import threading
import uuid
from dataclasses import dataclass, field

import orjson
from flask import current_app
from kombu import Connection

from app.broker import connect, declare_queue, is_rabbitmq
from app.messages import MAX_BYTES_PER_MESSAGE, MAX_EVENTS_PER_MESSAGE, PERSIST_EVENTS_TASK, build_message
from app.observability.metrics import MESSAGE_ENCODING_FAILURES

log = logging.getLogger(__name__)



class BrokerUnavailable(Exception):
    """The broker could not confirm the message in time: nothing may be promised to the client."""


@dataclass
class _Pending:
    part: orjson.Fragment
    events: int
    size: int
    done: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None


class BatchingPublisher:
    """One per web process: merges the parts waiting to be published into one confirmed message."""

    def __init__(self, celery, timeout: float, queue_name: str):
        self._celery = celery
        self._timeout = timeout
        self._sender = ConfirmedSender(celery, queue_name, timeout) if ConfirmedSender.serves(celery) else None
        self._queue: queue.Queue[_Pending] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def publish(self, part: dict) -> None:
        """Block until `part` is confirmed by the broker; BrokerUnavailable otherwise."""
        self.publish_many([part])

    def publish_many(self, parts: list[dict]) -> None:
        """Block until every part is confirmed (the publisher merges them into as few messages as
        its limits allow); BrokerUnavailable if one was not, though others may have been."""
        pendings = []
        for part in parts:
            encoded = encode_part(part)
            pendings.append(_Pending(orjson.Fragment(encoded), len(part["events"]), len(encoded)))
        self._ensure_thread()
        for pending in pendings:
            self._queue.put(pending)
        # A hard cap under the contract's 2 s: behind a publish that is itself timing out (connect
        # plus confirm can take twice the timeout), a request answers 503 rather than wait its turn.
        # If that publish succeeds after all, a client's retry with the same event_id is stored once.
        for pending in pendings:
            if not pending.done.wait(self._timeout + 0.5):
                raise BrokerUnavailable("the broker did not confirm in time")
            if pending.error is not None:
                raise BrokerUnavailable(str(pending.error)) from pending.error

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="eye-publisher", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            events, size = batch[0].events, batch[0].size
            while events < MAX_EVENTS_PER_MESSAGE and size < MAX_BYTES_PER_MESSAGE:
                try:
                    pending = self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(pending)
                events += pending.events
                size += pending.size
            error = None
            try:
                self._send(build_message([pending.part for pending in batch]), events)
            except Exception as exc:  # kombu/amqp raise many kinds: all mean "not confirmed"
                # (Not an encoding error: every part was encoded by its own request already.)
                log.warning("broker did not confirm an ingest message: %s", type(exc).__name__)
                error = exc
            for pending in batch:
                pending.error = error
                pending.done.set()

    def _send(self, message: dict, events: int) -> None:
        if self._sender is not None:
            self._sender.send(message, events)
            return
        self._celery.send_task(
            PERSIST_EVENTS_TASK,
            args=[message],
            # What monitoring shows of the arguments: a summary, not Celery's repr of every event
            # (profiled: 15-20 % of the CPU of a small message's publish).
            argsrepr=f"<{len(message['parts'])} parts, {events} events>",
            kwargsrepr="{}",
            # One reconnection attempt revives a connection the broker dropped while idle; a broker
            # that is down fails it at once (refused) or within the timeout: never a hang.
            retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1},
            timeout=self._timeout,
            confirm_timeout=self._timeout,
        )


class ConfirmedSender:
    """Publishes ingest task messages on a RabbitMQ confirm channel of its own (one thread uses it).

    What Celery's send_task promised is kept: the queue declared as Celery declares it, a persistent
    message, a publisher confirm within the timeout, and one new connection when the kept one was
    dropped while idle (a broker that is down fails at once, or within the timeout: never a hang).
    """

    def __init__(self, celery, queue_name: str, timeout: float):
        self._celery = celery
        self._queue = celery.amqp.queues[queue_name]
        self._timeout = timeout
        self._connection: Connection | None = None
        self._channel = None

    @staticmethod
    def serves(celery) -> bool:
        return is_rabbitmq(celery.conf.broker_url)

    def send(self, message: dict, events: int) -> None:
        task_id = str(uuid.uuid4())
        task = self._celery.amqp.as_task_v2(
            task_id, PERSIST_EVENTS_TASK, args=[message],
            # What monitoring shows of the arguments: a summary, not every event.
            argsrepr=f"<{len(message['parts'])} parts, {events} events>", kwargsrepr="{}",
        )
        body = orjson.dumps(task.body)
        try:
            self._publish(body, task)
        except Exception:
            # A connection the broker dropped while idle fails its first publish: one new one.
            # (Sent twice after all? The worker stores an event once, whatever it receives.)
            self.close()
            self._publish(body, task)

    def _publish(self, body: bytes, task) -> None:
        channel = self._open_channel()
        try:
            prepared = channel.prepare_message(
                body, 0, "application/x-eye-json", "binary", task.headers,
                {**task.properties, "delivery_mode": 2},
            )
            exchange = self._queue.exchange.name
            channel.basic_publish(prepared, exchange=exchange, routing_key=self._queue.routing_key,
                                  confirm_timeout=self._timeout)
        except Exception:
            self.close()  # after a timeout the channel's state is unknown: never reused
            raise

    def _open_channel(self):
        if self._channel is None:
            # A read slower than the timeout fails (a declare on a cluster node that lost its majority
            # would otherwise wait for it); a broker that refuses fails at once; a cluster URL tries
            # its next node.
            connection = connect(self._celery.connection_for_write(transport_options={"read_timeout": self._timeout}),
                                 self._timeout)
            channel = connection.channel()
            try:
                declare_queue(self._queue, channel)  # as Celery's own publish would: the queue exists before the first event
            except Exception:
                connection.close()  # not kept yet: close() would not reach it
                raise
            self._connection, self._channel = connection, channel
        return self._channel

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            try:
                connection.close()
            except Exception:
                pass


def encode_part(part: dict) -> bytes:
    """A part as the JSON the worker reads, encoded exactly; a rejection that cannot be is made safe.

    Validation refuses any event the encoder cannot write (ingest/validation.py), so a failure here is a
    bug of ours, not an outage: it is logged and counted, and the part is still sent, its rejections'
    values written as text, so the record of each refusal is kept.
    """
    try:
        return orjson.dumps(part)
    except TypeError as exc:
        MESSAGE_ENCODING_FAILURES.inc()
        log.error("an ingest message part could not be encoded (%s); its rejections are stored as text", exc)
    # The events alone were checked by that same encoder; only the rejections' errors and raw items
    # can hold what it refuses (a key that is not a string, a value of no JSON type).
    return orjson.dumps(part, default=str, option=orjson.OPT_NON_STR_KEYS)


def publish_part(part: dict) -> None:
    """Publish one request's part (its accepted events and rejections) with publisher confirms."""
    _publisher().publish(part)


def publish_parts(parts: list[dict]) -> None:
    """Publish several parts with publisher confirms (a replay's); BrokerUnavailable if one was not."""
    _publisher().publish_many(parts)


def _publisher() -> BatchingPublisher:
    app = current_app._get_current_object()
    publisher = app.extensions.get("eye_publisher")
    if publisher is None:
        publisher = app.extensions.setdefault(
            "eye_publisher", BatchingPublisher(app.extensions["celery"], app.config["EYE_PUBLISH_TIMEOUT"],
                                           app.config["EYE_QUEUE"])
        )
    return publisher
