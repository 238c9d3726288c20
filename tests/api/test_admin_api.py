"""Applications and keys over HTTP with an admin key; rate limiting per key."""

import json

import pytest

from tests.fixtures.apps import make_key_factory


@pytest.fixture
def admin(embedded_client, embedded_key):
    """Call the admin API with a fresh admin key."""
    key = embedded_key("admin")

    def call(method, path, body=None):
        return embedded_client.open(path, method=method, headers={"X-API-Key": key},
                                    data=None if body is None else json.dumps(body), content_type="application/json")
    return call


def test_create_application_then_key_then_use_and_revoke(admin, embedded_client, sample):
    created = admin("POST", "/api/v1/applications", {"name": "checkout"})
    assert created.status_code == 201 and created.json["name"] == "checkout"
    assert admin("POST", "/api/v1/applications", {"name": "checkout"}).status_code == 409

    new_key = admin("POST", "/api/v1/applications/checkout/keys", {"scopes": ["ingest"]})
    assert new_key.status_code == 201
    body = new_key.json
    assert body["scopes"] == ["ingest"] and body["key"].startswith(f"eye_{body['prefix']}_")

    listing = admin("GET", "/api/v1/applications").json["items"]
    checkout = next(a for a in listing if a["name"] == "checkout")
    assert [k["prefix"] for k in checkout["keys"]] == [body["prefix"]]
    assert body["key"] not in json.dumps(listing)

    send = embedded_client.post("/api/v1/events", data=json.dumps(sample("pageview")),
                                headers={"X-API-Key": body["key"]}, content_type="application/json")
    assert send.status_code == 202
    assert admin("DELETE", f"/api/v1/keys/{body['prefix']}").status_code == 204
    assert admin("DELETE", f"/api/v1/keys/{body['prefix']}").status_code == 404
    send = embedded_client.post("/api/v1/events", data=json.dumps(sample("pageview")),
                                headers={"X-API-Key": body["key"]}, content_type="application/json")
    assert send.status_code == 401


@pytest.mark.parametrize("body", [{"scopes": []}, {"scopes": ["write"]}, {}, {"scopes": "read"}])
def test_bad_key_requests_are_422(admin, body):
    admin("POST", "/api/v1/applications", {"name": "shop"})
    response = admin("POST", "/api/v1/applications/shop/keys", body)
    assert response.status_code == 422 and response.json["errors"]


def test_key_for_unknown_application_is_404(admin):
    assert admin("POST", "/api/v1/applications/ghost/keys", {"scopes": ["read"]}).status_code == 404


@pytest.mark.parametrize("scopes", [("ingest",), ("read",), ("ingest", "read")])
def test_admin_routes_need_the_admin_scope(embedded_client, embedded_key, scopes):
    key = embedded_key(*scopes)
    assert embedded_client.get("/api/v1/applications", headers={"X-API-Key": key}).status_code == 403
    assert embedded_client.delete("/api/v1/keys/abc", headers={"X-API-Key": key}).status_code == 403
    assert embedded_client.get("/api/v1/applications").status_code == 401


def test_rate_limit_per_key_answers_429_with_retry_after(make_embedded_app):
    app = make_embedded_app(EYE_RATE_LIMIT="5/minute")
    make_key = make_key_factory(app)
    first, second = make_key("read"), make_key("read")
    client = app.test_client()
    answers = [client.get("/api/v1/applications", headers={"X-API-Key": first}).status_code for _ in range(7)]
    assert answers[5:] == [429, 429]
    limited = client.get("/api/v1/applications", headers={"X-API-Key": first})
    assert limited.json["code"] == 429 and int(limited.headers["Retry-After"]) >= 1
    # Another key has its own budget; probes are never limited.
    assert client.get("/api/v1/applications", headers={"X-API-Key": second}).status_code == 403
    assert all(client.get("/healthz").status_code == 200 for _ in range(10))


def test_no_rate_limit_when_unset(embedded_client, embedded_key):
    key = embedded_key("read")
    answers = {embedded_client.get("/api/v1/event-types", headers={"X-API-Key": key}).status_code for _ in range(50)}
    assert answers == {200}


def test_dashboard_tokens_are_limited_per_address(make_embedded_app):
    app = make_embedded_app(EYE_TOKEN_RATE_LIMIT="3/minute")
    client = app.test_client()
    answers = [client.post("/dashboard/token").status_code for _ in range(5)]
    assert answers == [200, 200, 200, 429, 429]


def test_behind_a_proxy_the_limit_counts_each_forwarded_client(make_embedded_app):
    # EYE_PROXY_HOPS=1 (the cluster profile's HAProxy): the address is the one the proxy forwards.
    app = make_embedded_app(EYE_TOKEN_RATE_LIMIT="2/minute", EYE_PROXY_HOPS="1")
    client = app.test_client()

    def token(address: str) -> int:
        return client.post("/dashboard/token", headers={"X-Forwarded-For": address}).status_code

    assert [token("203.0.113.7") for _ in range(3)] == [200, 200, 429]
    assert token("203.0.113.8") == 200  # another client behind the same proxy has its own count
    # Without the setting, a forwarded address is not believed (a client could send any).
    plain = make_embedded_app(EYE_TOKEN_RATE_LIMIT="2/minute").test_client()
    statuses = [plain.post("/dashboard/token", headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code
                for i in range(3)]
    assert statuses == [200, 200, 429]
