"""Short-lived signed tokens that let the dashboard page send its own mouse events, no key needed."""

import threading
import time
import uuid

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app.identity.keys import Principal

SALT = "eye-dashboard-token"
MOUSE_MOVE = ("mouse", "move")
DASHBOARD_APPLICATION = "dashboard"

# Tokens already verified, each until it expires: a live page sends a batch every 250 ms, and
# checking its signature and decoding its claims again each time was ~8 % of the web process's work
# on such a request. Bounded: emptied when full (a page then pays one check again).
_VERIFIED_LIMIT = 10_000
_verified: dict[tuple[str, int, str], tuple[Principal, float]] = {}  # (secret, max_age, token) -> (…, until)
_verified_lock = threading.Lock()


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=SALT)


def issue_token(secret_key: str, application_id: int) -> tuple[str, str]:
    """A token bound to a fresh session; returns (token, session_id)."""
    session_id = str(uuid.uuid4())
    token = _serializer(secret_key).dumps({"sid": session_id, "app": application_id})
    return token, session_id


def principal_from_token(token: str, secret_key: str, max_age: int) -> Principal | None:
    """The principal a valid token stands for; None if it is tampered, expired or malformed."""
    known = _verified.get((secret_key, max_age, token))
    if known is not None and time.time() < known[1]:
        return known[0]
    try:
        claims, signed_at = _serializer(secret_key).loads(token, max_age=max_age, return_timestamp=True)
    except (BadSignature, SignatureExpired):
        return None
    if not isinstance(claims, dict) or "sid" not in claims or "app" not in claims:
        return None
    principal = Principal(
        application_id=int(claims["app"]),
        application_name=DASHBOARD_APPLICATION,
        scopes=frozenset({"ingest"}),
        key_prefix="dashboard-token",
        session_id=str(claims["sid"]),
        only_event_type=MOUSE_MOVE,
    )
    with _verified_lock:
        if len(_verified) >= _VERIFIED_LIMIT:
            _verified.clear()
        # Valid while its age is at most max_age (itsdangerous's own rule), so until then.
        _verified[(secret_key, max_age, token)] = (principal, signed_at.timestamp() + max_age)
    return principal
