"""Process-wide hooks: flush every live client at exit, renew each one in a fork()ed child."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from typing import Protocol

logger = logging.getLogger("eye_client")


class _Managed(Protocol):
    def _after_fork_in_child(self) -> None: ...
    def _shutdown_at_exit(self) -> None: ...


# Weak, so registering a client never keeps it alive.
_clients: weakref.WeakSet[_Managed] = weakref.WeakSet()
_lock = threading.Lock()
_installed = False


def register(client: _Managed) -> None:
    """Track `client`, installing the hooks the first time (not at import)."""
    global _installed
    with _lock:
        _clients.add(client)
        if _installed:
            return
        atexit.register(_shutdown_all)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_renew_all_in_child)
        _installed = True


def _shutdown_all() -> None:
    for client in list(_clients):
        try:
            client._shutdown_at_exit()
        except Exception:
            logger.exception("eye_client: error while flushing at exit")


def _renew_all_in_child() -> None:
    global _lock
    # Another thread may have held the lock at fork time; in the child it would never be freed.
    _lock = threading.Lock()
    for client in list(_clients):
        client._after_fork_in_child()
