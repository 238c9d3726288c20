"""The Eye: behavioural event collection. `create_app` builds the Flask app; it runs nothing."""

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app.config import Config


def create_app(overrides: dict | None = None) -> Flask:
    """The app, its settings read from `overrides` first and then the environment (see Config)."""
    app = Flask(__name__)
    config = Config(overrides)
    app.config.from_object(config)
    # A setting Config knows it has read from the overrides already, and typed ("30d" is a
    # timedelta there): only the others (TESTING, …) are passed on as given.
    app.config.update({name: value for name, value in (overrides or {}).items() if not hasattr(config, name)})

    from app import cli, models  # noqa: F401  (models: tables known to Flask-Migrate)
    from app.api import applications, error_monitor, event_types, events, health, mouse_metrics, sessions, stats
    from app.api.openapi import document_registry
    from app.api.stateless_session import CookieSessionOutsideTheApi
    from app.console import views as console
    from app.dashboard import live  # noqa: F401  (before socketio.init_app: see its docstring)
    from app.dashboard import views as dashboard
    from app.dashboard.live_channel import LiveChannel
    from app.event_types import init_app as init_event_types
    from app.extensions import api, db, migrate, socketio
    from app.identity import keys
    from app.ingest.validation import envelope_check
    from app.observability import logs, metrics
    from app.rate_limits import init_rate_limits
    from tasks.celery_app import celery_init_app

    app.session_interface = CookieSessionOutsideTheApi()
    init_event_types(app)  # first: the OpenAPI document and the views read it
    envelope_check()  # compiled now, not in the first request
    db.init_app(app)
    keys.init_app(app)
    migrate.init_app(app, db, directory=str(_migrations_dir()))
    celery_init_app(app)
    api.init_app(app)
    init_rate_limits(app)
    logs.init_app(app)
    socketio.init_app(
        app,
        # The workers' metrics arrive on it, several to a message (dashboard/live_channel.py).
        client_manager=LiveChannel(app.config["SOCKETIO_MESSAGE_QUEUE"], channel=app.config["EYE_SOCKETIO_CHANNEL"]),
        transports=app.config["EYE_SOCKETIO_TRANSPORTS"],
    )

    if app.config["EYE_PROXY_HOPS"]:
        # Outermost: the client's address and scheme as the proxies in front forwarded them, for the
        # per-address limits and the logs.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["EYE_PROXY_HOPS"], x_proto=app.config["EYE_PROXY_HOPS"])

    for resource in (health, events, sessions, mouse_metrics, error_monitor, stats, event_types, applications):
        api.register_blueprint(resource.blp)
    app.register_blueprint(dashboard.blp)
    app.register_blueprint(console.blp)
    app.register_blueprint(metrics.blp)
    document_registry(api, app.extensions["event_types"])
    cli.init_app(app)
    return app


def _migrations_dir():
    from pathlib import Path

    return Path(__file__).resolve().parents[2] / "migrations"
