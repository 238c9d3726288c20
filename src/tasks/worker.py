"""Worker entry point: `celery -A tasks.worker worker`."""

from celery.signals import setup_logging

from app import create_app
from app.config import log_level
from app.observability.logs import configure_logging


@setup_logging.connect
def _json_logs(**kwargs):
    # Connected, this replaces Celery's own logging set-up: one JSON line per record, as the web's.
    configure_logging(log_level())


flask_app = create_app()
celery_app = flask_app.extensions["celery"]
