"""Keys: 401 without a valid one, 403 with the wrong scope, revocation, keys stored hashed."""

import json

import pytest
from sqlalchemy import select

from app.extensions import db
from app.identity import keys
from app.models import ApiKey


@pytest.fixture
def post_event(embedded_client, sample):
    """Send the pageview sample with the given headers."""
    def post(headers):
        return embedded_client.post("/api/v1/events", data=json.dumps(sample("pageview")),
                                    headers=headers, content_type="application/json")
    return post


def test_no_key_is_401(post_event):
    response = post_event({})
    assert response.status_code == 401
    assert response.json["code"] == 401 and "X-API-Key" in response.json["message"]


@pytest.mark.parametrize("credential", ["eye_0000000000_nope", "garbage", "eye_", "eye__"])
def test_unknown_key_is_401(post_event, credential):
    assert post_event({"X-API-Key": credential}).status_code == 401


def test_wrong_secret_for_a_real_prefix_is_401(post_event, embedded_key):
    real = embedded_key("ingest")
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    assert post_event({"X-API-Key": forged}).status_code == 401


def test_read_only_key_on_ingest_is_403(post_event, embedded_key):
    response = post_event({"X-API-Key": embedded_key("read")})
    assert response.status_code == 403
    assert "ingest" in response.json["message"]


def test_revoked_key_is_401(embedded_app, post_event, embedded_key):
    key = embedded_key("ingest")
    assert post_event({"X-API-Key": key}).status_code == 202
    prefix = key.split("_")[1]
    with embedded_app.app_context():
        assert keys.revoke_key(prefix) is True
        assert keys.revoke_key(prefix) is False  # already revoked
    assert post_event({"X-API-Key": key}).status_code == 401


def test_bearer_header_is_accepted(post_event, embedded_key):
    assert post_event({"Authorization": f"Bearer {embedded_key('ingest')}"}).status_code == 202


def test_keys_are_stored_only_as_a_hash(embedded_app, embedded_key):
    key = embedded_key("ingest", "read")
    with embedded_app.app_context():
        stored = db.session.scalar(select(ApiKey).where(ApiKey.prefix == key.split("_")[1]))
    assert key not in (stored.key_hash, stored.prefix)
    assert stored.key_hash == keys.hash_key(key)
    assert stored.scopes == ["ingest", "read"]


def test_unknown_scope_is_refused(embedded_app):
    with embedded_app.app_context():
        keys.create_application("scoped")
        with pytest.raises(keys.KeyRequestError):
            keys.create_key("scoped", ["write"])
        with pytest.raises(keys.KeyRequestError):
            keys.create_key("no-such-app", ["read"])
