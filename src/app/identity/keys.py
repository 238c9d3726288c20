"""Applications and API keys: creation, revocation, and authentication of a presented key."""

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask, current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import ApiKey, Application

SCOPES = ("ingest", "read", "admin")
KEY_MARK = "eye_"


class KeyRequestError(Exception):
    """A key operation the caller asked for cannot be done (unknown app, bad scope…)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: an application, through a key (or a dashboard token) with scopes."""

    application_id: int
    application_name: str
    scopes: frozenset[str]
    key_prefix: str
    # A dashboard token is bound to one session and one event type.
    session_id: str | None = None
    only_event_type: tuple[str, str] | None = None


@dataclass(frozen=True)
class NewKey:
    key: str
    prefix: str
    scopes: list[str]
    application: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_application(name: str) -> Application:
    application = Application(name=name)
    db.session.add(application)
    db.session.commit()
    return application


def find_application(name: str) -> Application | None:
    return db.session.scalar(select(Application).where(Application.name == name))


def get_or_create_application(name: str) -> Application:
    application = find_application(name)
    if application is None:
        try:
            application = create_application(name)
        except IntegrityError:
            # Someone else made it at the same moment: the unique name decides.
            db.session.rollback()
            application = find_application(name)
    return application


def list_applications() -> list[Application]:
    return list(db.session.scalars(select(Application).order_by(Application.name)))


def create_key(application_name: str, scopes: list[str]) -> NewKey:
    """Make a key for an application; the returned plain key is never stored nor shown again."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if not scopes or unknown:
        raise KeyRequestError(f"Scopes must be among {', '.join(SCOPES)}; got {unknown or 'none'}.")
    application = find_application(application_name)
    if application is None:
        raise KeyRequestError(f"No application named {application_name!r}.")
    prefix = secrets.token_hex(5)
    key = f"{KEY_MARK}{prefix}_{secrets.token_urlsafe(32)}"
    ordered = [scope for scope in SCOPES if scope in scopes]
    db.session.add(
        ApiKey(application=application, prefix=prefix, key_hash=hash_key(key), scopes=ordered)
    )
    db.session.commit()
    return NewKey(key=key, prefix=prefix, scopes=ordered, application=application.name)


def revoke_key(prefix: str) -> bool:
    """Revoke a key by its prefix; False if there is no such live key."""
    api_key = db.session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if api_key is None or api_key.revoked_at is not None:
        return False
    api_key.revoked_at = datetime.now(UTC)
    db.session.commit()
    _key_cache().forget(prefix)
    return True


class KeyStoreUnavailable(Exception):
    """The database could not be asked about a key this process has never seen."""


class _KeyCache:
    """Recent key look-ups, so the ingest path does not query the database on every request.

    Entries are fresh for `ttl` seconds: a key revoked in another process stops working within
    that time. A stale entry still answers while the database is unreachable, so ingest keeps
    working through a database outage (nobody can revoke a key meanwhile either).
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, str, Principal | None]] = {}
        self._lock = threading.Lock()

    def get(self, prefix: str, stale_ok: bool = False):
        entry = self._entries.get(prefix)
        if entry and (stale_ok or entry[0] > time.monotonic()):
            return entry
        return None

    def put(self, prefix: str, key_hash: str, principal: Principal | None, ttl: float) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[prefix] = (time.monotonic() + ttl, key_hash, principal)

    def forget(self, prefix: str) -> None:
        with self._lock:
            self._entries.pop(prefix, None)


def init_app(app: Flask) -> None:
    """Give the app its key cache (per app and per process: a forked child starts with its parent's)."""
    app.extensions["eye_key_cache"] = _KeyCache()


def _key_cache() -> _KeyCache:
    return current_app.extensions["eye_key_cache"]


def _look_up(prefix: str, cache_seconds: float):
    """The cache entry for a prefix, fetched from the database when it is not fresh."""
    cache = _key_cache()
    cached = cache.get(prefix)
    if cached is not None:
        return cached
    try:
        row = db.session.execute(
            select(ApiKey, Application.name).join(Application).where(ApiKey.prefix == prefix)
        ).first()
    except Exception as exc:
        db.session.rollback()
        stale = cache.get(prefix, stale_ok=True)
        if stale is not None:
            return stale
        raise KeyStoreUnavailable(type(exc).__name__) from exc
    if row is None or row.ApiKey.revoked_at is not None:
        # Remember the miss too, so guessing keys does not hammer the database.
        cache.put(prefix, "", None, cache_seconds)
        return (0.0, "", None)
    api_key, application_name = row
    principal = Principal(
        application_id=api_key.application_id,
        application_name=application_name,
        scopes=frozenset(api_key.scopes),
        key_prefix=prefix,
    )
    cache.put(prefix, api_key.key_hash, principal, cache_seconds)
    return (0.0, api_key.key_hash, principal)


def authenticate(key: str, cache_seconds: float) -> Principal | None:
    """The principal of a presented key, or None if it is unknown or revoked.

    Raises KeyStoreUnavailable when the database is down and this process has never seen the key.
    """
    if not key.startswith(KEY_MARK) or key.count("_") < 2:
        return None
    prefix = key[len(KEY_MARK):].split("_", 1)[0]
    _, stored_hash, principal = _look_up(prefix, cache_seconds)
    # Constant-time: the comparison's duration tells nothing about how much of a guess was right.
    if principal is None or not hmac.compare_digest(stored_hash, hash_key(key)):
        return None
    return principal
