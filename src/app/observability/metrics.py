"""Prometheus metrics. With PROMETHEUS_MULTIPROC_DIR set (make run sets it), the web process's
/metrics also shows what its worker processes on the same host counted."""

import os

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

EVENTS_ACCEPTED = Counter("eye_events_accepted_total", "Events answered 202, by application", ["application"])
EVENTS_REJECTED = Counter("eye_events_rejected_total", "Events rejected at the door, by kind", ["kind"])
PUBLISH_SECONDS = Histogram(
    "eye_publish_seconds", "Time from handing a request's events to the publisher to the broker's confirm",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
MESSAGE_ENCODING_FAILURES = Counter(
    "eye_message_encoding_failures_total",
    "Ingest message parts the encoder refused (a bug, not an outage): their rejections were stored as text",
)
EVENTS_PERSISTED = Counter("eye_events_persisted_total", "New events stored by the workers")
TASK_FAILURES = Counter("eye_task_failures_total", "Ingest tasks that failed, by reason", ["reason"])
TASK_RETRIES = Counter("eye_task_retries_total", "Ingest tasks retried because the database was unavailable")
STORED_GROUP_MESSAGES = Histogram(
    "eye_stored_group_messages", "Ingest messages stored per worker transaction (tasks/grouping.py)",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200),
)
MOUSE_METRICS_EMITTED = Counter("eye_mouse_metrics_emitted_total", "mouse_metrics messages sent to live charts")

blp = Blueprint("metrics", __name__)


def registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        return collected
    from prometheus_client import REGISTRY

    return REGISTRY


@blp.get("/metrics")
def metrics() -> Response:
    """Prometheus metrics (no key needed: it holds counts, never keys or payloads)."""
    return Response(generate_latest(registry()), mimetype=CONTENT_TYPE_LATEST)
