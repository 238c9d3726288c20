"""The RabbitMQ side of The Eye beyond publishing: connecting to a cluster, readiness, moving queues."""

from kombu import Connection


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
