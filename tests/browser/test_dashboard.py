"""The live mouse chart page: its lock-down, its token, and, in headless Chromium against the real
service (gunicorn web + celery worker on PostgreSQL and RabbitMQ), the distance it plots."""

import math
import re
import uuid
from html.parser import HTMLParser
from itertools import pairwise

import pytest

from tests.browser.conftest import block_websocket, wait_in_page
from tests.fixtures.apps import wait_for
from tests.fixtures.processes import ROOT, free_port
from tests.fixtures.services import delete_broker_entities


class InlineCode(HTMLParser):
    """Collects what a strict CSP would block: inline scripts, style elements and attributes."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self._in_script = True
            if "src" not in attrs:
                self.found.append("<script> without src")
        if tag == "style" or "style" in attrs or any(name.startswith("on") for name in attrs):
            self.found.append(f"inline style or handler on <{tag}>")

    def handle_endtag(self, tag):
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.found.append("script body")


def test_the_page_is_locked_down_and_holds_no_key(embedded_client):
    response = embedded_client.get("/dashboard")
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "style-src 'self'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    html = response.get_data(as_text=True)
    checker = InlineCode()
    checker.feed(html)
    assert checker.found == []
    assert "eye_" not in html  # no API key
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        assert embedded_client.get(asset).status_code == 200, asset


def test_the_token_is_bound_to_a_fresh_session_for_mouse_moves_only(embedded_client, sample):
    grants = [embedded_client.post("/dashboard/token") for _ in range(2)]
    assert all(g.status_code == 200 and g.headers["Cache-Control"] == "no-store" for g in grants)
    first, second = (g.json for g in grants)
    assert first["session_id"] != second["session_id"]
    assert first["expires_in"] > 0
    bearer = {"Authorization": f"Bearer {first['token']}"}
    own = {**sample("mouse_move"), "session_id": first["session_id"]}
    pageview = {**sample("pageview"), "session_id": first["session_id"]}
    other = {**own, "session_id": second["session_id"]}
    assert embedded_client.post("/api/v1/events", json=own, headers=bearer).status_code == 202
    assert embedded_client.post("/api/v1/events", json=pageview, headers=bearer).status_code == 403
    assert embedded_client.post("/api/v1/events", json=other, headers=bearer).status_code == 403
    assert embedded_client.get("/dashboard/token").status_code == 405


@pytest.fixture
def live_service(pg_app, service_env, broker_url, start_worker_process, start_web_process) -> str:
    """The real service as in production: a gunicorn web process and a celery worker; its URL.

    They use a queue of their own: the in-process test worker (pg_worker), if another test started
    it, runs its tasks in whichever app was created last, maybe one on the embedded default.
    """
    queue = f"{service_env['EYE_QUEUE']}_browser"
    # PYTHONPATH: the processes run this tree's code, whatever the venv's editable install points at.
    env = {**service_env, "EYE_QUEUE": queue, "PYTHONPATH": str(ROOT / "src")}
    worker = start_worker_process(env, concurrency=2)
    web, url = start_web_process(env)
    yield url
    web.stop()
    worker.stop()  # before its queue goes, or it would declare it again
    delete_broker_entities(broker_url, [queue], [queue])


# Increasing coordinates only: points sampled at the same instant, sorted by (t, x, y), then keep
# the order they were drawn in, so the path's length is known exactly.
PATH = [(60, 80), (660, 80), (660, 420), (1000, 620)]
PATH_LENGTH = sum(math.dist(a, b) for a, b in pairwise(PATH))


@pytest.mark.browser
def test_the_chart_reaches_the_distance_the_mouse_travelled(browser, live_service):

    page = browser.new_page(viewport={"width": 1280, "height": 720})
    problems = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    # Console errors name no URL: failed responses are recorded with theirs instead.
    page.on("console", lambda m: m.type == "error" and "Failed to load resource" not in m.text
            and problems.append(m.text))
    page.on("response", lambda r: r.status >= 400 and not r.url.endswith("/favicon.ico")
            and problems.append(f"{r.status} {r.url}"))
    page.goto(f"{live_service}/dashboard")
    wait_in_page(page, "window.eyeDashboard.ready && window.eyeDashboard.connected")

    page.mouse.move(*PATH[0])
    for x, y in PATH[1:]:
        page.mouse.move(x, y, steps=40)
    wait_in_page(page, f"Math.abs((window.eyeDashboard.latest || {{}}).distance - {PATH_LENGTH})"
                       f" <= {0.01 * PATH_LENGTH}", timeout=20)
    state = page.evaluate("() => ({latest: window.eyeDashboard.latest, sent: window.eyeDashboard.sentPoints,"
                          " status: document.getElementById('status').textContent})")
    assert state["latest"]["distance"] == pytest.approx(PATH_LENGTH, rel=0.01)
    assert state["latest"]["points"] >= 100 and state["sent"] >= 100
    assert state["status"].startswith("connected") and "points sent" in state["status"]
    assert problems == []  # no script error, no CSP violation


@pytest.mark.browser
def test_where_websocket_is_blocked_one_web_process_serves_the_chart_by_long_polling(browser, live_service):
    """One web process holds every request of a session, so the page may fall back to long-polling."""

    page = browser.new_page(viewport={"width": 1280, "height": 720})
    block_websocket(page, free_port())
    page.goto(f"{live_service}/dashboard")
    wait_in_page(page, "window.eyeDashboard.ready && window.eyeDashboard.connected")
    page.mouse.move(*PATH[0])
    for x, y in PATH[1:]:
        page.mouse.move(x, y, steps=40)
        page.wait_for_timeout(400)  # several batches: see test_dashboard_two_web.chart_a_path
    wait_in_page(page, f"Math.abs((window.eyeDashboard.latest || {{}}).distance - {PATH_LENGTH})"
                       f" <= {0.01 * PATH_LENGTH}", timeout=20)
    status = page.evaluate("document.getElementById('status').textContent")
    assert status.startswith("connected (polling)")


@pytest.mark.browser
def test_eye_client_batches_any_event_from_a_page(browser, live_service, pg_app, pg_key):
    """Eye.client in a real browser: track() queues, flush() sends one batch, each event stored once."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Event

    key, session_id = pg_key("ingest"), str(uuid.uuid4())
    page = browser.new_page()
    page.goto(f"{live_service}/dashboard")
    result = page.evaluate("""async ([key, sessionId]) => {
        const eye = Eye.client({apiKey: key, interval: 60000});
        const ids = [
            eye.track(sessionId, "page interaction", "pageview", {host: location.host, path: "/"}),
            eye.track(sessionId, "page interaction", "cta click", {host: location.host, path: "/", element: "buy"}),
            eye.track(sessionId, "page interaction", "pageview", {host: location.host}),  // no path: rejected
        ];
        const done = await eye.flush();
        return {ids, done, stats: eye.stats, pending: eye.pending()};
    }""", [key, session_id])
    assert result["done"] is True and result["pending"] == 0
    assert result["stats"]["sent"] == 2 and result["stats"]["rejected"] == 1

    def stored():
        with pg_app.app_context():
            ids = db.session.scalars(select(Event.event_id).where(Event.session_id == uuid.UUID(session_id)))
            return sorted(map(str, ids))
    wait_for(lambda: len(stored()) == 2, timeout=20)
    assert stored() == sorted(result["ids"][:2])
