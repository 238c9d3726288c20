"""The worker's handle on PostgreSQL: a raw psycopg2 cursor for the bulk writes, and their columns.

Profiled with 100-event messages, SQLAlchemy's compilation of multi-row statements cost as much as
PostgreSQL's own work: the writes in storage/ are plain SQL with nothing compiled per call (rows go
in as one array literal per column through unnest), and statements whose results are not needed in
between share one round trip. The constraints still decide: ON CONFLICT on the unique keys, in the
caller's transaction.
"""

from datetime import datetime

from app.extensions import db


def raw_cursor(connection=None):
    """A psycopg2 cursor on `connection` (default: the session's), inside its transaction."""
    connection = db.session.connection() if connection is None else connection
    return connection.connection.dbapi_connection.cursor()


# psycopg2 sends a Python list as ARRAY[v1, v2, ...], an SQL expression of one constant per element,
# which this process writes and the server's parser reads one by one. A message's columns of hundreds
# of values (a mixed batch of 100 holds ~400 mouse points) cost both sides about three times what one
# array literal ('{v1,v2,...}', one string constant) costs: 2.0 + 2.2 ms against 0.6 + 0.7 ms of
# CPU (this process + PostgreSQL) for four columns of 400. The SQL casts the literal (%s::float8[]).


def array_of_numbers(values) -> str:
    """An array literal of ints or floats: each written as repr() writes it (a float's shortest
    exact form), which PostgreSQL reads back as the same number."""
    return "{" + ",".join(map(repr, values)) + "}"


def array_of_text(values) -> str:
    """An array literal of strings, UUIDs or datetimes (None is NULL): every element double-quoted,
    with its backslashes and double quotes escaped, so no text can end an element or be read as NULL."""
    return "{" + ",".join(map(_quoted_element, values)) + "}"


def _quoted_element(value) -> str:
    if value is None:
        return "NULL"
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    if "\\" in text or '"' in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text + '"'
