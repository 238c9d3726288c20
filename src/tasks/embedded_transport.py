"""The embedded default broker: kombu's filesystem transport, made safe and quick for one machine.

kombu's filesystem transport writes a message straight into the folder its consumers read, so a
consumer can pick up a half-written file (kombu issue #1551: 3 of 5,000 messages lost in a
test). Here each message is written to a temporary name and renamed into place, which is atomic.
Its folders live under EYE_DATA_DIR, so the broker URL is just `eyefs://`.
"""

import os
import uuid
from time import monotonic

from celery.worker import state as worker_state
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

from app.config import data_dir


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".partial-{uuid.uuid4()}")
        with open(partial, "wb") as f:
            f.write(str_to_bytes(dumps(payload)))
            f.flush()
            # Survive a power cut, as a durable broker would.
            os.fsync(f.fileno())
        os.replace(partial, final)

    @property
    def data_folder_in(self):
        return str(_folder("queue"))

    @property
    def data_folder_out(self):
        return str(_folder("queue"))

    @property
    def control_folder(self):
        return _folder("control")


def _folder(name: str):
    path = data_dir() / "broker" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


class Transport(filesystem.Transport):
    Channel = Channel
    # The filesystem transport polls; a short interval keeps the live chart live.
    polling_interval = 0.05
    driver_type = "filesystem"
    driver_name = "eyefs"

    def drain_events(self, connection, timeout=None):
        """Wait for a message as kombu does, but give up early when the Celery worker is stopping.

        Celery's loop for a transport without an event loop of its own (this one) waits here up to
        2 s at a time, and once more after a stop was asked: its warm shutdown spent up to 4 s
        polling an idle folder. Waiting in short slices, it notices the stop within one.
        """
        if timeout is None:
            return super().drain_events(connection, timeout)
        deadline = monotonic() + timeout
        while True:
            try:
                return super().drain_events(connection, min(STOP_CHECK_SECONDS, max(deadline - monotonic(), 0)))
            except TimeoutError:  # kombu's socket.timeout
                if monotonic() >= deadline or _worker_stopping():
                    raise


# How often a waiting worker looks whether it was asked to stop.
STOP_CHECK_SECONDS = 0.25


def _worker_stopping() -> bool:
    """Whether this process is a Celery worker asked to stop (warm or cold), as Celery tells it."""
    # `is`, not `in`/`==`: a warm shutdown sets should_stop to its exit code, 0.
    return any(flag is not None and flag is not False
               for flag in (worker_state.should_stop, worker_state.should_terminate))


def register_embedded_transport() -> None:
    """Make `eyefs://` URLs resolve to this transport (in kombu, Celery and Socket.IO alike)."""
    TRANSPORT_ALIASES.setdefault("eyefs", f"{__name__}:Transport")
