"""Dashboard tokens: bound to one session and one event type; expired, tampered or foreign → refused."""

import json
import time

from itsdangerous.timed import TimestampSigner

from app.identity import dashboard_tokens

SECRET = "test-secret"


def test_a_fresh_token_stands_for_its_session_and_mouse_moves_only():
    token, session_id = dashboard_tokens.issue_token(SECRET, application_id=7)
    principal = dashboard_tokens.principal_from_token(token, SECRET, max_age=60)
    assert principal.session_id == session_id and principal.application_id == 7
    assert principal.only_event_type == ("mouse", "move") and principal.scopes == frozenset({"ingest"})


def test_an_expired_token_is_refused(monkeypatch):
    issued_long_ago = int(time.time()) - 7200
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: issued_long_ago)
    token, _ = dashboard_tokens.issue_token(SECRET, application_id=1)
    monkeypatch.undo()
    assert dashboard_tokens.principal_from_token(token, SECRET, max_age=3600) is None


def test_a_tampered_or_foreign_token_is_refused():
    token, _ = dashboard_tokens.issue_token(SECRET, application_id=1)
    payload, _, rest = token.partition(".")
    forged_payload = payload[:-2] + ("AA" if not payload.endswith("AA") else "BB")
    assert dashboard_tokens.principal_from_token(f"{forged_payload}.{rest}", SECRET, 60) is None
    assert dashboard_tokens.principal_from_token(token[:-2] + "xx", SECRET, 60) is None
    assert dashboard_tokens.principal_from_token(token, "another-secret", 60) is None
    assert dashboard_tokens.principal_from_token("not.a.token", SECRET, 60) is None


def test_an_expired_token_gets_401_over_http(embedded_app, embedded_client, sample, monkeypatch):
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) - 7200)
    grant = embedded_client.post("/dashboard/token").json
    monkeypatch.undo()
    event = {**sample("mouse_move"), "session_id": grant["session_id"]}
    response = embedded_client.post("/api/v1/events", data=json.dumps(event), content_type="application/json",
                                    headers={"Authorization": f"Bearer {grant['token']}"})
    assert response.status_code == 401


def test_a_verified_token_is_remembered_only_until_it_expires(monkeypatch):
    token, session_id = dashboard_tokens.issue_token(SECRET, application_id=3)
    assert dashboard_tokens.principal_from_token(token, SECRET, max_age=60).session_id == session_id
    # Remembered: the second check does not verify the signature again…
    monkeypatch.setattr(dashboard_tokens, "_serializer", lambda secret: (_ for _ in ()).throw(AssertionError))
    assert dashboard_tokens.principal_from_token(token, SECRET, max_age=60).session_id == session_id
    monkeypatch.undo()
    # …but only for the secret and lifetime it was verified with, and only while it is valid.
    assert dashboard_tokens.principal_from_token(token, "another-secret", 60) is None
    issued_at = time.time()
    monkeypatch.setattr(time, "time", lambda: issued_at + 31)
    assert dashboard_tokens.principal_from_token(token, SECRET, max_age=30) is None
    monkeypatch.undo()
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    assert dashboard_tokens.principal_from_token(token, SECRET, max_age=60) is None
