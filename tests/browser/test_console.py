"""The data team's console (/console) in headless Chromium against the real service (a gunicorn web
process and a celery worker on PostgreSQL and RabbitMQ): its charts and tables show the service's
own numbers, its lookups find what the test sent, and the keys pasted into it go nowhere but the
X-API-Key header of its calls to the API."""

import json
import os
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from app.extensions import db
from tests.browser.conftest import wait_in_page
from tests.fixtures.apps import make_key_factory, migrated_app, wait_for
from tests.fixtures.processes import ROOT
from tests.fixtures.services import delete_broker_entities

SCREENSHOT = ROOT / "docs" / "console.png"
MOUSE_DISTANCE = 50 + 20  # the mouse batch below: (100,100) → (130,140) → (130,160)
# In every refused item: its sample on the page must show it as text, never make it an element.
MARKUP = "<b class=injected>x</b>"


@pytest.fixture
def console_service(make_database, broker_url, run_id, start_worker_process, start_web_process):
    """The real service on a database of this test's own, so every number on the page is the test's:
    (its URL, a key factory)."""
    queue, channel = f"eye_test_{run_id}_console", f"eye_test_sio_{run_id}_console"
    env = {"DATABASE_URL": make_database(), "CELERY_BROKER_URL": broker_url, "EYE_QUEUE": queue,
           "EYE_SOCKETIO_CHANNEL": channel, "SECRET_KEY": f"test-secret-{run_id}"}
    app = migrated_app(**env)  # its schema, and the keys the test makes
    # PYTHONPATH: the processes run this tree's code, whatever the venv's editable install points at.
    process_env = {**env, "PYTHONPATH": str(ROOT / "src")}
    worker = start_worker_process(process_env, concurrency=2)
    web, url = start_web_process(process_env)
    yield url, make_key_factory(app)
    web.stop()
    worker.stop()  # before its queue goes, or it would declare it again
    with app.app_context():
        db.engine.dispose()
    delete_broker_entities(broker_url, [queue], [queue, channel])


def call(url: str, key: str, path: str, body=None) -> tuple[int, dict]:
    """One API call from the test's side: (status, JSON answer)."""
    request = urllib.request.Request(url + path, data=None if body is None else json.dumps(body).encode(),
                                     headers={"X-API-Key": key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def traffic(now: datetime, session_id: str, own_category: str) -> tuple[list[dict], dict]:
    """The batch the test sends: a session of three events, three of a type of its own, five refused
    pageviews carrying markup (four with a `path` not starting with /, one without `host`); and the
    ids it will look for."""
    def event(category, name, data, seconds_ago, session=None, event_id=None):
        return {"event_id": event_id or str(uuid.uuid4()), "session_id": session or str(uuid.uuid4()),
                "category": category, "name": name, "data": data,
                "timestamp": (now - timedelta(seconds=seconds_ago)).isoformat()}

    t = int((now - timedelta(seconds=1)).timestamp() * 1000)
    points = [{"x": 100, "y": 100, "t": t - 20}, {"x": 130, "y": 140, "t": t - 10}, {"x": 130, "y": 160, "t": t}]
    ids = {"stored": str(uuid.uuid4()), "refused": [str(uuid.uuid4()) for _ in range(5)]}
    events = [
        event("page interaction", "pageview", {"host": "shop.example.com", "path": "/basket"}, 3, session_id,
              ids["stored"]),
        event("page interaction", "cta click", {"host": "shop.example.com", "path": "/basket", "element": "pay"},
              2, session_id),
        event("mouse", "move", {"points": points, "viewport": {"w": 1280, "h": 720}}, 1, session_id),
        *(event(own_category, "ping", {"n": n}, 1) for n in range(3)),
        *(event("page interaction", "pageview", {"host": "broken.example.com", "path": MARKUP}, 1, event_id=event_id)
          for event_id in ids["refused"][:4]),
        event("page interaction", "pageview", {"path": f"/{MARKUP}"}, 1, event_id=ids["refused"][4]),
    ]
    return events, ids


def wait_console(page, expression: str, timeout: float = 15) -> None:
    """wait_in_page, failing with the console's own state and status line."""
    try:
        wait_in_page(page, expression, timeout)
    except pytest.fail.Exception:
        state = page.evaluate("JSON.stringify({status: document.getElementById('status').textContent,"
                              " error: eyeConsole.error, loads: eyeConsole.loads, loading: eyeConsole.loading})")
        pytest.fail(f"{expression!r} still false after {timeout} s; the console: {state}")


# Every place of the page a key could sit in: its markup, every attribute, every field's value, the
# address, the cookies the page sees.
FIND_SECRETS = """(secrets) => {
    const found = [];
    const look = (where, text) => secrets.forEach((secret, i) => {
        if (String(text).includes(secret)) found.push(`secret ${i} in ${where}`);
    });
    look("outerHTML", document.documentElement.outerHTML);
    look("location", location.href);
    look("document.cookie", document.cookie);
    for (const element of document.querySelectorAll("*")) {
        for (const attribute of element.attributes) look(`${element.tagName}[${attribute.name}]`, attribute.value);
        if ("value" in element) look(`${element.tagName}#${element.id}.value`, element.value);
    }
    return found;
}"""

CHART_DATA = """(id) => {
    const chart = Chart.getChart(id);
    return chart && {labels: chart.data.labels,
                     datasets: chart.data.datasets.map(d => ({label: d.label, data: d.data}))};
}"""

FAILING_ROWS = """() => [...document.querySelectorAll("#failing-types tbody tr")].map(row => ({
    type: row.querySelector(".type-name").textContent,
    link: row.querySelector("a").getAttribute("href"),
    cells: [...row.cells].map(cell => cell.textContent),
    fieldErrors: [...row.querySelectorAll(".field-errors li")].map(li => li.textContent),
    sample: row.querySelector("pre.sample") && row.querySelector("pre.sample").textContent,
}))"""


def chart_totals(page, canvas_id: str) -> dict:
    chart = page.evaluate(CHART_DATA, canvas_id)
    return {dataset["label"]: dataset["data"] for dataset in chart["datasets"]}


@pytest.mark.browser
def test_the_console_shows_the_services_numbers_and_keeps_its_keys_to_the_api_header(browser, console_service):
    url, make_key = console_service
    ingest_key = make_key("ingest", application=f"console-{uuid.uuid4().hex[:8]}")
    read_key, admin_key = make_key("read"), make_key("admin")
    secrets = [ingest_key, read_key, admin_key]

    # A type of the test's own, unregistered; its markup must show as text, never become elements.
    own_category, session_id = f"<em>console</em> {uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    events, ids = traffic(datetime.now(UTC), session_id, own_category)
    status, answer = call(url, ingest_key, "/api/v1/events/batch", {"events": events})
    assert status == 202 and answer["accepted"] == 6 and len(answer["rejected"]) == 5, answer

    # Stored and recorded: the volume of the last hour (up to the next minute, which holds them).
    until = (datetime.now(UTC) + timedelta(minutes=2)).replace(second=0, microsecond=0)
    iso = "%Y-%m-%dT%H:%M:%SZ"
    hour = f"/api/v1/stats/volume?since={(until - timedelta(hours=1)):{iso}}&until={until:{iso}}&step=1m"

    def stored_and_refused():
        volume = call(url, read_key, hour)[1]
        return (sum(s["total"] for s in volume["stored"]), sum(s["total"] for s in volume["refused"])) == (6, 5)
    wait_for(stored_and_refused, timeout=20, interval=0.2)
    wait_for(lambda: call(url, read_key, f"/api/v1/sessions/{session_id}/mouse-metrics")[1].get("items"), timeout=20)

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests, failed, problems = [], [], []
    page.on("request", lambda request: requests.append(request))
    page.on("response", lambda r: r.status >= 400 and failed.append((r.status, urlsplit(r.url).path)))
    page.on("pageerror", lambda error: problems.append(str(error)))
    # Console errors name no URL: failed responses are recorded with theirs instead.
    page.on("console", lambda m: m.type == "error" and "Failed to load resource" not in m.text
            and problems.append(m.text))
    served = page.goto(f"{url}/console")
    # The page's lock-down, which keeps a pasted key from any code but its own (a CSP violation is a
    # console error, in `problems`).
    assert "connect-src 'self'" in served.headers["content-security-policy"]
    assert served.headers["cache-control"] == "no-store" and served.headers["referrer-policy"] == "no-referrer"
    wait_console(page, "window.eyeConsole && window.eyeConsole.ready")
    assert page.evaluate("eyeConsole.timeZone") == page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
    assert page.evaluate(FIND_SECRETS, secrets) == []

    # A key that cannot read: said on the page, nothing drawn. (The scan sees a key in a field.)
    page.fill("#read-key", ingest_key)
    assert page.evaluate(FIND_SECRETS, secrets) == ["secret 0 in INPUT#read-key.value"]
    page.click("#save-read-key")
    wait_console(page, "(eyeConsole.error || '').includes('cannot read')")
    assert "This key cannot read (HTTP 403" in page.text_content("#status")
    assert page.evaluate(CHART_DATA, "volume-chart") is None

    page.fill("#read-key", read_key)
    page.press("#read-key", "Enter")
    wait_console(page, "eyeConsole.loads >= 1 && !eyeConsole.loading && !eyeConsole.error")
    page.fill("#admin-key", admin_key)
    page.click("#save-admin-key")
    wait_console(page, "eyeConsole.loads >= 2 && !eyeConsole.loading && !eyeConsole.error")

    # The charts draw the API's numbers, bucket by bucket, over the page's own window.
    state = page.evaluate("({window: eyeConsole.window, totals: eyeConsole.totals, keys: eyeConsole.keys})")
    assert state["keys"] == {"read": True, "admin": True}
    assert (state["window"]["range"], state["window"]["step"]) == ("24h", "5m")
    window = state["window"]
    status, volume = call(url, read_key, f"/api/v1/stats/volume?since={window['since']}&until={window['until']}"
                                         f"&step={window['step']}")
    assert status == 200 and len(volume["buckets"]) == 288
    stored_drawn = chart_totals(page, "volume-chart")
    assert stored_drawn == {f"{s['category']} / {s['name']}": s["counts"] for s in volume["stored"]}
    assert {label: sum(counts) for label, counts in stored_drawn.items()} == {
        f"{own_category} / ping": 3, "page interaction / pageview": 1, "page interaction / cta click": 1,
        "mouse / move": 1}
    assert chart_totals(page, "refusals-chart") == {s["kind"]: s["counts"] for s in volume["refused"]}
    assert state["totals"] == {"stored": 6, "refused": 5}
    assert len(page.evaluate(CHART_DATA, "volume-chart")["labels"]) == 288
    assert page.text_content("#time-zone") == page.evaluate("eyeConsole.timeZone")

    # The failing type, its most common field error first, a sample as text, the dry run's counts.
    [row] = page.evaluate(FAILING_ROWS)
    assert row["type"] == "page interaction / pageview"
    assert row["cells"][1].startswith("5") and "invalid_payload: 5" in row["cells"][1]
    assert row["cells"][2] == f"{100 * 5 / 6:.1f} %"
    assert row["fieldErrors"][0] == "data.path × 4: Must start with '/'."
    assert row["fieldErrors"][1] == "data.host × 1: Missing data for required field."
    assert json.loads(row["sample"])["event_id"] in ids["refused"] and MARKUP in row["sample"]
    assert row["link"].startswith("/api/v1/errors?category=page%20interaction&name=pageview&since=")
    assert "0 of 5 would pass now" in row["cells"][5] and "still invalid_payload: 5" in row["cells"][5]

    # The unregistered type, its markup shown as text.
    unregistered = page.evaluate("""() => [...document.querySelectorAll("#unregistered tbody tr")]
        .map(row => [...row.cells].map(cell => cell.textContent))""")
    assert unregistered == [[own_category, "ping", "3"]]
    assert page.evaluate("document.querySelectorAll('main em, .injected').length") == 0

    # A shorter window: the same events, by the minute.
    page.select_option("#range", "1h")
    wait_console(page, "eyeConsole.loads >= 3 && !eyeConsole.loading")
    assert page.evaluate("[eyeConsole.window.step, eyeConsole.volume.buckets.length, eyeConsole.totals]") == [
        "1m", 60, {"stored": 6, "refused": 5}]

    # Where is my event? A stored one, then a refused one.
    page.fill("#event-id", ids["stored"])
    page.click("#find-event")
    wait_console(page, f"(eyeConsole.lookups.event || {{}}).event_id === '{ids['stored']}'")
    found = page.evaluate("eyeConsole.lookups.event")
    assert found["found"] and found["refused"] == []
    assert [(c["session_id"], c["name"]) for c in found["stored"]] == [(session_id, "pageview")]
    assert "page interaction / pageview" in page.text_content("#event-result table.stored-copies")
    # The stored copy's session, looked up from its link: summary, events in order, mouse chart.
    page.click("#event-result button.link")
    wait_console(page, f"(eyeConsole.lookups.session || {{}}).session_id === '{session_id}'")
    session = page.evaluate("eyeConsole.lookups.session")
    assert session["summary"]["event_count"] == 3
    assert [e["name"] for e in session["events"]] == ["pageview", "cta click", "move"]
    listed = page.evaluate("[...document.querySelectorAll('#session-result tbody tr')].map(r => r.cells[1].textContent)")
    assert listed == ["page interaction / pageview", "page interaction / cta click", "mouse / move"]
    mouse = chart_totals(page, "mouse-chart")
    assert mouse["distance (px)"][-1]["y"] == pytest.approx(MOUSE_DISTANCE)
    assert page.is_visible("#mouse-chart")
    if os.environ.get("EYE_CONSOLE_SCREENSHOT") == "1":  # docs/console.png, remade on demand
        page.screenshot(path=str(SCREENSHOT), full_page=True)

    page.fill("#event-id", ids["refused"][0])
    page.press("#event-id", "Enter")
    wait_console(page, f"(eyeConsole.lookups.event || {{}}).event_id === '{ids['refused'][0]}'")
    refused = page.evaluate("eyeConsole.lookups.event")
    assert refused["stored"] == [] and [r["kind"] for r in refused["refused"]] == ["invalid_payload"]
    assert "invalid_payload" in page.text_content("#event-result table.refusals")

    # The keys: kept by the tab, in no element, address or cookie…
    kept = page.evaluate("Object.values(sessionStorage)")
    assert read_key in kept and admin_key in kept
    assert page.evaluate(FIND_SECRETS, secrets) == []
    assert not [c for c in page.context.cookies() if any(s in c["value"] or s in c["name"] for s in secrets)]
    # …and in no request but the X-API-Key header of its calls to the API, all to this origin.
    origin = f"{url}/"
    assert requests and all(r.url.startswith(origin) for r in requests), [r.url for r in requests]
    sent_keys = []
    for request in requests:
        headers, path = request.all_headers(), urlsplit(request.url).path
        assert not any(s in request.url or s in (request.post_data or "") for s in secrets), request.url
        for name, value in headers.items():
            if any(s in value or s in name for s in secrets):
                assert name == "x-api-key" and path.startswith("/api/v1/"), (name, request.url)
        if path.startswith("/api/v1/"):
            sent_keys.append((request.method, path, secrets.index(headers["x-api-key"])))
    assert ("GET", "/api/v1/stats/volume", 1) in sent_keys and ("POST", "/api/v1/errors/replay", 2) in sent_keys
    assert {key for method, path, key in sent_keys if method == "GET"} == {0, 1}  # ingest (refused), then read
    assert all(key == 2 for method, path, key in sent_keys if method == "POST")
    # The one key refused is the only failure, and nothing went wrong in the page.
    assert {status for status, path in failed if path != "/favicon.ico"} == {403}
    assert problems == []

    # Forgetting the keys: none kept, nothing drawn.
    page.click("#forget-keys")
    assert page.evaluate("Object.values(sessionStorage)") == []
    assert page.evaluate("[eyeConsole.keys, Chart.getChart('volume-chart') === undefined]") == [
        {"read": False, "admin": False}, True]
    assert "Keys forgotten" in page.text_content("#status")
