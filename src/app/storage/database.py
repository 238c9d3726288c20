"""The worker's handle on PostgreSQL: a raw psycopg2 cursor for the bulk writes, and JSON for them.

Profiled with 100-event messages, SQLAlchemy's compilation of multi-row statements cost as much as
PostgreSQL's own work: the writes in storage/ are plain SQL with nothing compiled per call (rows go
in through execute_values, or as one array per column through unnest), and statements whose
results are not needed in between share one round trip. The constraints still decide: ON CONFLICT
on the unique keys, in the caller's transaction.
"""

import orjson
from psycopg2.extras import Json

from app.extensions import db


def raw_cursor(connection=None):
    """A psycopg2 cursor on `connection` (default: the session's), inside its transaction."""
    connection = db.session.connection() if connection is None else connection
    return connection.connection.dbapi_connection.cursor()


def as_jsonb(value) -> Json:
    """A value for a jsonb column, written by orjson."""
    return Json(value, dumps=lambda v: orjson.dumps(v).decode())
