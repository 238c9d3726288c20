"""Sends live metrics from a worker to the Socket.IO rooms, through the message queue."""

import logging
import threading

from flask import current_app

from app.dashboard.live_channel import LiveChannel

log = logging.getLogger(__name__)

MOUSE_METRICS_EVENT = "mouse_metrics"

# The emitter's broker connection is not thread-safe, and a worker may run tasks in threads.
_lock = threading.Lock()


def session_room(session_id: str) -> str:
    """The room whose members watch one session."""
    return f"session:{session_id}"


def _emitter() -> LiveChannel:
    """The app's write-only side of the Socket.IO channel, made on first use in this process.

    Not when the app is made: a forked worker process must not share its parent's broker
    connection, and the parent never emits. The app owns it, so each app has its own queue's.
    """
    emitter = current_app.extensions.get("eye_emitter")
    if emitter is None:
        config = current_app.config
        emitter = LiveChannel(config["SOCKETIO_MESSAGE_QUEUE"], channel=config["EYE_SOCKETIO_CHANNEL"],
                              write_only=True)
        current_app.extensions["eye_emitter"] = emitter
    return emitter


def emit_mouse_metrics(metrics: list[dict]) -> None:
    """Emit each batch's metrics to its session's room, all in one message on the Socket.IO
    channel; a failure is logged, never raised.

    The metrics are already committed (and served by the API), so a lost live message must not
    fail the task: the next batch's message carries the session's totals anyway.
    """
    if not metrics:
        return
    try:
        with _lock:
            _emitter().emit_many(MOUSE_METRICS_EVENT, [(metric, session_room(metric["session_id"]))
                                                       for metric in metrics])
    except Exception:
        log.exception("could not emit %d mouse_metrics messages", len(metrics))
