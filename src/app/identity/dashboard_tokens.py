"""Short-lived signed tokens that let the dashboard page send its own mouse events, no key needed."""

import uuid

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app.identity.keys import Principal

SALT = "eye-dashboard-token"
MOUSE_MOVE = ("mouse", "move")
DASHBOARD_APPLICATION = "dashboard"


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=SALT)


def issue_token(secret_key: str, application_id: int) -> tuple[str, str]:
    """A token bound to a fresh session; returns (token, session_id)."""
    session_id = str(uuid.uuid4())
    token = _serializer(secret_key).dumps({"sid": session_id, "app": application_id})
    return token, session_id


def principal_from_token(token: str, secret_key: str, max_age: int) -> Principal | None:
    """The principal a valid token stands for; None if it is tampered, expired or malformed."""
    try:
        claims = _serializer(secret_key).loads(token, max_age=max_age)
    except (BadSignature, SignatureExpired):
        return None
    if not isinstance(claims, dict) or "sid" not in claims or "app" not in claims:
        return None
    return Principal(
        application_id=int(claims["app"]),
        application_name=DASHBOARD_APPLICATION,
        scopes=frozenset({"ingest"}),
        key_prefix="dashboard-token",
        session_id=str(claims["sid"]),
        only_event_type=MOUSE_MOVE,
    )
