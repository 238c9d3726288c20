"""The embedded default broker: kombu's filesystem transport, made safe and quick for one machine.

kombu's filesystem transport writes a message straight into the folder its consumers read, so a
consumer can pick up a half-written file (kombu issue #1551: 3 of 5,000 messages lost in a
test). Here each message is written to a temporary name and renamed into place, which is atomic.
Its folders live under EYE_DATA_DIR, so the broker URL is just `eyefs://`.
"""

import os
import uuid
from time import monotonic

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


def register_embedded_transport() -> None:
    """Make `eyefs://` URLs resolve to this transport (in kombu, Celery and Socket.IO alike)."""
    TRANSPORT_ALIASES.setdefault("eyefs", f"{__name__}:Transport")
