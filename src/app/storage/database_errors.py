"""Tells a passing database problem (retry later) from a refusal that will repeat (poison)."""

import psycopg2
from sqlalchemy.exc import DBAPIError

# SQLSTATE classes that pass: connection (08), rollback by deadlock or serialisation (40),
# lack of resources (53), operator intervention such as a restart (57), lock not available (55P03).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57")


def is_transient(exc: BaseException) -> bool:
    """Will the same work likely succeed later?

    Errors come wrapped by SQLAlchemy, or bare from the driver (the raw cursors of storage/).
    """
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        driver_error = exc.orig
    else:
        driver_error = exc
    if not isinstance(driver_error, psycopg2.Error):
        return False
    code = getattr(driver_error, "pgcode", None)
    if code:
        return code[:2] in _TRANSIENT_SQLSTATE_CLASSES or code == "55P03"
    # No SQLSTATE: the driver could not talk to the server at all (or lost it). A statement the
    # server refused always carries a SQLSTATE.
    return isinstance(driver_error, (psycopg2.OperationalError, psycopg2.InterfaceError))
