"""Binds a Celery app to a Flask app, so every task runs inside an app context."""

from celery import Celery, Task
from celery import current_app as current_celery_app
from celery.signals import worker_process_init
from flask import Flask

from tasks.embedded_transport import register_embedded_transport
from tasks.serialization import register_orjson


def celery_init_app(app: Flask) -> Celery:
    register_embedded_transport()
    register_orjson()

    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask, include=["tasks.ingest", "tasks.maintenance"])
    celery_app.flask_app = app
    celery_app.config_from_object(app.config["CELERY"])
    # `celery beat` (one per deployment; `make run` starts it inside its worker) sends the upkeep.
    celery_app.conf.beat_schedule = {
        "maintain-partitions": {
            "task": "eye.maintain_partitions",
            "schedule": app.config["EYE_MAINTENANCE_SECONDS"],
        },
    }
    # No set_default(): Celery's worker looks tasks up in its *default* app when it runs them, so
    # a second Flask app made in the same process (tests do) would take over the running worker's
    # tasks, database and all. `celery -A tasks.worker` makes its own app the default anyway.
    app.extensions["celery"] = celery_app
    return celery_app


@worker_process_init.connect
def _fresh_connections_after_fork(**kwargs):
    """A forked pool process must not share the parent's database sockets.

    Connected once, here, not per app: the worker's app is the one `celery -A tasks.worker` made current.
    """
    flask_app = getattr(current_celery_app, "flask_app", None)
    if flask_app is None:
        return
    with flask_app.app_context():
        from app.extensions import db

        db.engine.dispose(close=False)
