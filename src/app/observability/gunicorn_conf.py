"""gunicorn settings for The Eye's web process: `gunicorn -c python:app.observability.gunicorn_conf …`."""

import os

from app.observability.lingering_close import LingeringClose
from app.observability.logs import configure_logging

# Our request log (one JSON line per request) replaces gunicorn's access log.
accesslog = None
worker_class = "gthread"


def post_worker_init(worker):
    configure_logging(os.environ.get("EYE_LOG_LEVEL", "INFO"))
    # Here, not in create_app: it works on gunicorn's own request and socket objects, and an early
    # refusal of a large body must be answered, not reset, whichever app gunicorn serves.
    worker.wsgi = LingeringClose(worker.wsgi)
