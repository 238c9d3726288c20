"""Each web process listens on the Socket.IO channel from its boot, not from its first client's
connection: metrics a worker sends right after a page connects are not lost while the listener binds."""

import shutil
import subprocess
import time

import pytest

from tests.fixtures.services import delete_broker_entities


def bindings_from(exchange: str) -> list[str]:
    """The queues bound to `exchange` on the default vhost (rabbitmqctl: AMQP cannot list them)."""
    listing = subprocess.run(["rabbitmqctl", "-q", "list_bindings", "source_name", "destination_name"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split("\t")[1] for line in listing.splitlines()
            if line.startswith(exchange + "\t") and "\t" in line]


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl to list bindings")
def test_a_booted_web_process_already_listens_on_the_channel(pg_app, service_env, start_web_process):
    channel = f"{service_env['EYE_SOCKETIO_CHANNEL']}_boot"
    web = None
    try:
        web, _ = start_web_process({**service_env, "EYE_SOCKETIO_CHANNEL": channel})
        # No Socket.IO client has connected: only the boot can have started the listener.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not bindings_from(channel):
            time.sleep(0.2)
        assert bindings_from(channel), f"no queue bound to {channel} before the first client\n{web.log()[-2000:]}"
    finally:
        # The listener's queue goes with its connection; the channel's exchange is this test's own,
        # removed once no process can declare it again.
        if web is not None:
            web.stop()
        delete_broker_entities(service_env["CELERY_BROKER_URL"], [], [channel])
