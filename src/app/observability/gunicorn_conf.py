"""gunicorn settings for The Eye's web process: `gunicorn -c python:app.observability.gunicorn_conf …`."""

import os

from app.observability.logs import configure_logging

# Our request log (one JSON line per request) replaces gunicorn's access log.
accesslog = None
worker_class = "gthread"


def post_worker_init(worker):
    configure_logging(os.environ.get("EYE_LOG_LEVEL", "INFO"))
