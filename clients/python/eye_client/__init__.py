"""Client for The Eye: track() queues events, a background thread sends them in batches."""

import logging

from eye_client.client import EyeClient
from eye_client.version import __version__

# A library must not configure logging, only keep "no handler" warnings away when the app doesn't.
logging.getLogger("eye_client").addHandler(logging.NullHandler())

__all__ = ["EyeClient", "__version__"]
