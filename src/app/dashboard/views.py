"""The live mouse chart page, and the short-lived token its script asks for (no API key in the page)."""

from flask import Blueprint, current_app, render_template

from app.identity.dashboard_tokens import DASHBOARD_APPLICATION, issue_token
from app.identity.keys import get_or_create_application
from app.page_headers import lock_down

blp = Blueprint("dashboard", __name__, url_prefix="/dashboard")

# Scripts and styles come from our own files only, so an injected tag cannot run or restyle.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; connect-src 'self' ws: wss:; style-src 'self'; "
    "frame-ancestors 'none'"
)


@blp.after_request
def secure_headers(response):
    """Lock the page down: our own scripts only, never framed, no referrer leaked."""
    return lock_down(response, CONTENT_SECURITY_POLICY)


@blp.get("")
def page():
    """The live chart of this page's own mouse movement."""
    # The page's Socket.IO client tries the transports the server accepts, in this order.
    return render_template("dashboard.html", transports=current_app.config["EYE_SOCKETIO_TRANSPORTS"])


@blp.post("/token")
def token():
    """A token bound to a fresh session: it may send that session's mouse moves and watch them.

    Needs no key, so it is limited per client address (EYE_TOKEN_RATE_LIMIT, see rate_limits.py).
    """
    application = get_or_create_application(DASHBOARD_APPLICATION)
    config = current_app.config
    value, session_id = issue_token(config["SECRET_KEY"], application.id)
    body = {"token": value, "session_id": session_id, "expires_in": config["EYE_DASHBOARD_TOKEN_SECONDS"]}
    return body, 200, {"Cache-Control": "no-store"}
