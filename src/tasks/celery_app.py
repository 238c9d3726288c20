"""Binds a Celery app to a Flask app, so every task runs inside an app context."""

from celery import Celery, Task
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

    celery_app = Celery(app.name, task_cls=FlaskTask, include=["tasks.ingest"])
    celery_app.config_from_object(app.config["CELERY"])
    # No set_default(): Celery's worker looks tasks up in its *default* app when it runs them, so
    # a second Flask app made in the same process (tests do) would take over the running worker's
    # tasks, database and all. `celery -A tasks.worker` makes its own app the default anyway.
    app.extensions["celery"] = celery_app

    @worker_process_init.connect(weak=False)
    def _fresh_connections_after_fork(**kwargs):
        # A forked pool process must not share the parent's database sockets.
        with app.app_context():
            from app.extensions import db

            db.engine.dispose(close=False)

    return celery_app
