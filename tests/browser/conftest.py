"""What the browser tests share: Debian's Chromium, and waiting on a page whose CSP forbids eval."""

import os
import time

import pytest

from tests.fixtures.services import services_required

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def chromium_path() -> str:
    """Debian's Chromium (never a downloaded browser); skips, or fails when services are required."""
    if not os.access(CHROMIUM, os.X_OK):
        if services_required():
            pytest.fail(f"{CHROMIUM} is required (EYE_REQUIRE_SERVICES=1): apt-get install -y chromium")
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM} (apt-get install -y chromium)")
    return CHROMIUM


@pytest.fixture
def browser(chromium_path):
    """Debian's Chromium, headless, driven by playwright; closed after the test."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def wait_in_page(page, expression: str, timeout: float = 15) -> None:
    """Poll a JavaScript expression from here: the page's CSP forbids the eval wait_for_function uses."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            state = page.evaluate("JSON.stringify(window.eyeDashboard, ['ready', 'connected', 'sentPoints',"
                                  " 'error', 'latest', 'distance', 'points'])")
            pytest.fail(f"{expression!r} still false after {timeout} s; the page's state: {state}")
        time.sleep(0.1)


def block_websocket(page, closed_port: int) -> None:
    """Stand for a network that lets no WebSocket through: the page's every WebSocket goes to a closed port.

    An init script, so it is in place before the page's own scripts, and not subject to its CSP.
    """
    page.add_init_script(
        f"const Native = window.WebSocket, nowhere = 'ws://127.0.0.1:{closed_port}/';"
        " window.WebSocket = function (url, protocols) { return new Native(nowhere, protocols); };"
        " Object.assign(window.WebSocket, {prototype: Native.prototype, CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});"
    )
