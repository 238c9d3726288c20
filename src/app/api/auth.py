"""Who is calling: API keys (`X-API-Key` or `Authorization: Bearer`) and dashboard tokens."""

from functools import wraps

from flask import current_app, g, request
from flask_smorest import abort

from app.identity import dashboard_tokens, keys

SECURITY = [{"ApiKey": []}, {"BearerKey": []}]


def presented_credential() -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key.strip()
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def authenticate_request() -> keys.Principal | None:
    credential = presented_credential()
    if credential is None:
        return None
    config = current_app.config
    if credential.startswith(keys.KEY_MARK):
        return keys.authenticate(credential, config["EYE_KEY_CACHE_SECONDS"])
    return dashboard_tokens.principal_from_token(
        credential, config["SECRET_KEY"], config["EYE_DASHBOARD_TOKEN_SECONDS"]
    )


def require_scope(scope: str):
    """Allow the view only to a caller whose key has `scope`: 401 without a valid key, else 403."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if presented_credential() is None:
                abort(401, message="Missing API key: send it in the X-API-Key header.")
            try:
                principal = authenticate_request()
            except keys.KeyStoreUnavailable:
                abort(503, message="Keys cannot be checked right now (database unavailable). Retry shortly.",
                      headers={"Retry-After": "2"})
            if principal is None:
                abort(401, message="Unknown, revoked or expired API key.")
            if scope not in principal.scopes:
                abort(403, message=f"This key lacks the {scope!r} scope.")
            g.principal = principal
            return view(*args, **kwargs)

        return wrapper

    return decorator


def current_principal() -> keys.Principal:
    return g.principal
