"""Every route × every kind of caller answers as the contract says (section 2)."""

import json
import uuid

import pytest

from app.identity import keys

# The scope each API operation needs; a new route fails test_every_api_route_is_in_the_matrix.
REQUIRED_SCOPE = {
    "POST /api/v1/events": "ingest",
    "POST /api/v1/events/batch": "ingest",
    "GET /api/v1/events": "read",
    "GET /api/v1/events/{event_id}": "read",
    "GET /api/v1/sessions/{session_id}": "read",
    "GET /api/v1/sessions/{session_id}/events": "read",
    "GET /api/v1/sessions/{session_id}/mouse-metrics": "read",
    "GET /api/v1/errors": "read",
    "GET /api/v1/errors/summary": "read",
    "POST /api/v1/errors/replay": "admin",
    "GET /api/v1/stats/volume": "read",
    "GET /api/v1/event-types": "read",
    "GET /api/v1/applications": "admin",
    "POST /api/v1/applications": "admin",
    "POST /api/v1/applications/{name}/keys": "admin",
    "DELETE /api/v1/keys/{prefix}": "admin",
}
PUBLIC = ["/healthz", "/readyz", "/openapi.json", "/", "/metrics"]
CALLERS = ["none", "unknown", "revoked", "ingest", "read", "ingest+read", "admin"]


@pytest.fixture
def credentials(embedded_app, embedded_key):
    """A credential for each kind of caller (None: no header at all)."""
    revoked = embedded_key("ingest", "read", "admin")
    with embedded_app.app_context():
        keys.revoke_key(revoked.split("_")[1])
    return {
        "none": None,
        "unknown": "eye_0000000000_" + "x" * 43,
        "revoked": revoked,
        "ingest": embedded_key("ingest"),
        "read": embedded_key("read"),
        "ingest+read": embedded_key("ingest", "read"),
        "admin": embedded_key("admin"),
    }


def request_for(operation: str, sample) -> tuple[str, str, bytes | None]:
    method, template = operation.split(" ", 1)
    path = (template.replace("{session_id}", str(uuid.uuid4())).replace("{event_id}", str(uuid.uuid4()))
            .replace("{name}", "matrix-app")
            .replace("{prefix}", "0000000000"))
    body = None
    if operation == "POST /api/v1/events":
        body = json.dumps(sample("pageview")).encode()
    elif operation == "POST /api/v1/events/batch":
        body = json.dumps({"events": [sample("pageview")]}).encode()
    elif operation == "POST /api/v1/applications":
        body = json.dumps({"name": f"m-{uuid.uuid4().hex[:6]}"}).encode()
    elif operation == "POST /api/v1/errors/replay":
        body = json.dumps({"dry_run": True}).encode()
    elif operation.endswith("/keys"):
        body = json.dumps({"scopes": ["read"]}).encode()
    return method, path, body


def test_every_api_route_is_in_the_matrix(embedded_client):
    document = embedded_client.get("/openapi.json").json
    operations = {f"{m.upper()} {p}" for p, item in document["paths"].items() for m in item
                  if p.startswith("/api/") and m in ("get", "post", "put", "patch", "delete")}
    assert operations == set(REQUIRED_SCOPE)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("operation", sorted(REQUIRED_SCOPE))
def test_route_answers_by_caller(embedded_client, credentials, sample, operation, caller):
    method, path, body = request_for(operation, sample)
    headers = {} if credentials[caller] is None else {"X-API-Key": credentials[caller]}
    response = embedded_client.open(path, method=method, data=body, headers=headers, content_type="application/json")
    scopes = set(caller.split("+"))
    if caller in ("none", "unknown", "revoked"):
        assert response.status_code == 401, response.json
    elif REQUIRED_SCOPE[operation] not in scopes:
        assert response.status_code == 403, response.json
    else:
        assert response.status_code not in (401, 403, 500), response.json
    assert response.is_json and response.json.get("code", response.status_code) == response.status_code


@pytest.mark.parametrize("path", PUBLIC)
def test_public_routes_need_no_key(embedded_client, path):
    assert embedded_client.get(path).status_code == 200
