"""The Socket.IO message queue between the workers and the web processes (python-socketio's kombu
manager), with what a worker's transaction has to say sent as one message.

python-socketio publishes one message per emit and makes a new kombu Producer for each, which
declares the channel's exchange again: a round trip to RabbitMQ before every publish. A worker's
transaction folds many mouse batches, each with its own `mouse_metrics` message for its own room.
So the worker's side sends them all in one message, through one producer kept for the connection
(its exchange declared once, and again by kombu whenever it reconnects), and the web processes'
side unpacks it into the ordinary emits python-socketio delivers to the rooms, in the same order.

A web process of the release before this one ignores the grouped message (python-socketio skips a
method it does not know): during a rolling upgrade its dashboards miss live messages, never the
stored metrics, and the next message after the upgrade carries the session's totals.
"""

import socketio

# The grouped message's method; python-socketio's own are "emit", "callback", "enter_room", …
EMIT_MANY = "eye.emit_many"


class LiveChannel(socketio.KombuManager):
    """A kombu manager that can publish many emits as one message and unpacks such a message."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._publish_on_connection = None  # made on the first publish (the worker's process, after the fork)

    def emit_many(self, event: str, items: list[tuple[dict, str]], namespace: str = "/") -> None:
        """Emit `event` with each (data, room) in `items`: one message on the queue for them all.

        Sent to the other processes only (a worker has no clients of its own to deliver to).
        Raises if the message could not be published.
        """
        if not items:
            return
        emits = [{"method": "emit", "event": event, "data": data, "binary": False, "namespace": namespace,
                  "room": room, "skip_sid": None, "callback": None, "host_id": self.host_id}
                 for data, room in items]
        self._send({"method": EMIT_MANY, "emits": emits, "host_id": self.host_id})

    def _publish(self, data) -> None:
        # python-socketio's emits from this process: logged and dropped on failure, as its own do.
        try:
            self._send(data)
        except Exception as exc:
            self._get_logger().error("Cannot publish to rabbitmq... giving up",
                                     extra={"rabbitmq_exception": str(exc)})

    def _send(self, data) -> None:
        """One publish through the producer kept for the connection, tried twice."""
        body = self.json.dumps(data)
        try:
            self._producer_publish(self.publisher_connection)(body)
        except Exception:
            self._publish_on_connection = None  # a producer that failed is not kept
            self._producer_publish(self.publisher_connection)(body)

    def _producer_publish(self, connection):
        # python-socketio's makes a Producer (declaring the exchange: a round trip) per publish.
        # Kept instead; kombu's ensure() revives it on a new channel after a reconnect.
        if self._publish_on_connection is None:
            producer = connection.Producer(exchange=self._exchange(), **self.producer_options)
            self._publish_on_connection = connection.ensure(producer, producer.publish)
        return self._publish_on_connection

    def _listen(self):
        """What the queue delivers, each grouped message unpacked into its emits, in order."""
        for payload in super()._listen():
            try:
                data = self.json.loads(payload) if isinstance(payload, (str, bytes)) else payload
            except ValueError:
                yield payload  # python-socketio's to judge, as before
                continue
            if isinstance(data, dict) and data.get("method") == EMIT_MANY:
                yield from data.get("emits") or []
            else:
                yield data
