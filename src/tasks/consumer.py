"""The worker's consumer: Celery's own, less the native delayed delivery it adds for quorum queues.

Celery (5.5+) turns that step on whenever a queue is a quorum queue: at every worker start it declares
28 quorum queues and topic exchanges (celery_delayed_0…27) on each node of the broker URL and binds
ours to them, retrying each unreachable node three times. It routes countdown messages through those
topic exchanges, and only for queues behind a topic or fanout exchange: ours are direct, so it could
never carry them. The Eye's one countdown, an ingest task's retry while the database is down (with
back-off), goes to the ingest queue with an ETA and waits in the worker's timer, as on a classic
queue (the prefetch is raised per consumer, which quorum queues allow; tests/faults drill it). So
the step would only add Raft groups to the cluster and seconds to a worker's start while a node is down.
"""

from celery.worker.consumer import Consumer

DELAYED_DELIVERY_STEP = "celery.worker.consumer.delayed_delivery:DelayedDelivery"


class IngestConsumer(Consumer):
    class Blueprint(Consumer.Blueprint):
        default_steps = [step for step in Consumer.Blueprint.default_steps if step != DELAYED_DELIVERY_STEP]
