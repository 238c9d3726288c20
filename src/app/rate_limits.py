"""Per-key rate limiting of the API (Flask-Limiter), keyed by the key's public prefix, never the key."""

import hashlib

from flask import Flask, request
from flask_limiter import Limiter

from app.identity.keys import KEY_MARK


def rate_limit_identity() -> str:
    """Who a request counts against: a key's prefix, a dashboard token's digest, else the client address."""
    from app.api.auth import presented_credential

    credential = presented_credential()
    if credential and credential.startswith(KEY_MARK):
        return "key:" + credential[len(KEY_MARK):].split("_", 1)[0]
    if credential:
        return "token:" + hashlib.sha256(credential.encode()).hexdigest()[:16]
    return "addr:" + (request.remote_addr or "unknown")


def only_the_api_is_limited() -> bool:
    """Docs, probes, the dashboard page and static files are never limited."""
    return not request.path.startswith("/api/")


def nothing_limits_this_request(app: Flask) -> bool:
    """True when no limit can apply: Flask-Limiter then skips resolving limits for the request.

    Profiled: resolving the (empty) set of limits of an API call without EYE_RATE_LIMIT took ~8 % of
    a single-event POST's CPU in the web process.
    """
    if request.path.startswith("/api/"):
        return not app.config["RATELIMIT_DEFAULT"]
    return request.endpoint != "dashboard.token"


def init_rate_limits(app: Flask) -> Limiter:
    """Bind a limiter to `app`: per key on the API (EYE_RATE_LIMIT), per address on dashboard tokens.

    One Limiter per app, not a module-level one: Flask-Limiter keeps its limits and storage on the
    instance, so one instance shared by several apps (tests make many) would mix their settings.
    """
    from app.dashboard import views as dashboard_views

    limiter = Limiter(
        key_func=rate_limit_identity,
        default_limits_exempt_when=only_the_api_is_limited,
        headers_enabled=True,
        key_prefix="eye",
        app=app,
    )
    limiter.limit(
        lambda: app.config["EYE_TOKEN_RATE_LIMIT"],
        exempt_when=lambda: request.endpoint != "dashboard.token",
    )(dashboard_views.blp)
    limiter.request_filter(lambda: nothing_limits_this_request(app))
    app.extensions["eye_limiter"] = limiter
    return limiter
