"""Socket.IO handlers (namespace "/"): who may watch which session's live metrics.

A dashboard token watches its own session (joined at connect); a key with the `read` scope may
subscribe to any session. Anyone else is refused at connect.

create_app imports this module before `socketio.init_app`: Flask-SocketIO replays on each new
server only the handlers registered while it had none, so imported later they would reach the
first app's server alone, and a second app in the same process would accept anyone.
"""

import logging
import uuid
from dataclasses import dataclass

from flask import current_app, session
from flask_socketio import join_room, leave_room

from app.dashboard.broadcast import session_room
from app.extensions import socketio
from app.identity import dashboard_tokens, keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Viewer:
    """A connected client's right to watch: one session (a token) or any (a read key)."""

    session_id: str | None

    def may_watch(self, session_id: str) -> bool:
        return self.session_id is None or self.session_id == session_id


def viewer_from_auth(auth) -> Viewer | None:
    """The viewer a Socket.IO `auth` payload stands for; None if it grants nothing."""
    if not isinstance(auth, dict):
        return None
    config = current_app.config
    token, api_key = auth.get("token"), auth.get("api_key")
    if isinstance(token, str) and token:
        principal = dashboard_tokens.principal_from_token(
            token, config["SECRET_KEY"], config["EYE_DASHBOARD_TOKEN_SECONDS"]
        )
        return Viewer(principal.session_id) if principal else None
    if isinstance(api_key, str) and api_key:
        principal = keys.authenticate(api_key, config["EYE_KEY_CACHE_SECONDS"])
        return Viewer(None) if principal and "read" in principal.scopes else None
    return None


def _session_id(data) -> str | None:
    """The session a `subscribe`/`unsubscribe` names, in canonical form; None if it is not a UUID."""
    value = data.get("session_id") if isinstance(data, dict) else None
    try:
        return str(uuid.UUID(value)) if isinstance(value, str) else None
    except ValueError:
        return None


@socketio.on("connect")
def connect(auth=None):
    """Admit a valid token (into its session's room at once) or a read key; refuse anyone else."""
    viewer = viewer_from_auth(auth)
    if viewer is None:
        raise ConnectionRefusedError("Connect with auth {token} (dashboard) or {api_key} (read scope).")
    # Kept (server-side, per connection) to check again at each subscribe: expiry and revocation.
    session["eye_auth"] = dict(auth)
    if viewer.session_id:
        join_room(session_room(viewer.session_id))


@socketio.on("subscribe")
def subscribe(data=None):
    """Join a session's room; acknowledged with {"ok": true} or {"ok": false, "error": ...}."""
    viewer = viewer_from_auth(session.get("eye_auth"))
    if viewer is None:
        return {"ok": False, "error": "Your token has expired or your key was revoked."}
    session_id = _session_id(data)
    if session_id is None:
        return {"ok": False, "error": "Give the session_id to watch, as a UUID."}
    if not viewer.may_watch(session_id):
        return {"ok": False, "error": "A dashboard token may only watch its own session."}
    join_room(session_room(session_id))
    return {"ok": True}


@socketio.on("unsubscribe")
def unsubscribe(data=None):
    """Leave a session's room."""
    session_id = _session_id(data)
    if session_id is None:
        return {"ok": False, "error": "Give the session_id to stop watching, as a UUID."}
    leave_room(session_room(session_id))
    return {"ok": True}


def close_connections() -> None:
    """Close every Socket.IO connection of this process at once: the web process is stopping.

    A WebSocket, or a long poll, holds one of the web server's threads for as long as its client
    stays; a poll left by a client that vanished, up to ping interval + timeout (45 s). A stopping
    gunicorn worker waits for its threads, so it would wait for the clients. Closed here, each
    client gets Engine.IO's close packet (a dashboard reconnects, to the server that comes next)
    and the threads return.
    """
    server = socketio.server
    if server is None:  # Socket.IO was never bound to an app in this process
        return
    eio = server.eio
    for client in list(eio.sockets.values()):
        try:
            # Without waiting for the packet to go out: a polling client between two polls may
            # never come back for it.
            client.close(wait=False, reason=eio.reason.SERVER_DISCONNECT)
        except Exception:  # the others must be closed all the same
            log.exception("could not close Socket.IO connection %s", client.sid)


def listen_for_worker_metrics() -> None:
    """Start this web process's listener on the Socket.IO channel now, as the process boots.

    python-socketio starts it at the first client's connection, and the listener then needs a
    moment to bind its queue to the channel: what the workers sent that client meanwhile was lost
    (seen under load, a short path's first metrics). Started at boot, it is bound before any client.
    """
    server = socketio.server
    if server is not None and not server.manager_initialized:
        server.manager_initialized = True
        server.manager.initialize()
