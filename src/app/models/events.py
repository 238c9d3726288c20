"""Stored events and the sessions they belong to.

`events` is partitioned by range of `timestamp` (migration 0003; partitions are kept by
app/maintenance): PostgreSQL requires every unique key of a partitioned table to hold the partition
key, so an event's identity is (application, event_id, timestamp), as the contract says.
"""

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Sequence, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db

EVENT_IDS = Sequence("events_id_seq")


class Event(db.Model):
    __tablename__ = "events"
    __table_args__ = (
        # A session's events in order: timestamp, then arrival.
        Index("ix_events_session_order", "session_id", "timestamp", "received_at", "id"),
        Index("ix_events_order", "timestamp", "received_at", "id"),
        Index("ix_events_type_order", "category", "name", "timestamp", "received_at", "id"),
        # The read API's category-only and name-only filters (migration 0002).
        Index("ix_events_category_order", "category", "timestamp", "received_at", "id"),
        Index("ix_events_name_order", "name", "timestamp", "received_at", "id"),
        Index("ix_events_application_order", "application_id", "timestamp", "received_at", "id"),
        Index("ix_events_received", "received_at"),
    )

    # The primary key is the event's identity: a retry (same application, event_id and timestamp)
    # is stored once.
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    # Arrival order, the last tie-breaker of the read API's sort key.
    id: Mapped[int] = mapped_column(BigInteger, EVENT_IDS, server_default=EVENT_IDS.next_value())
    session_id: Mapped[uuid.UUID] = mapped_column()
    category: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict] = mapped_column(JSONB)
    # Set by the API when the request arrived: the tie-breaker after timestamp.
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Session(db.Model):
    """A global session: several applications may send events for one session_id."""

    __tablename__ = "sessions"
    # Retention removes the sessions whose last event is older than EYE_RETENTION (migration 0003).
    __table_args__ = (Index("ix_sessions_last_event", "last_event_at"),)

    session_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    first_event_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_event_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    event_count: Mapped[int] = mapped_column(BigInteger)


class SessionApplication(db.Model):
    """Which applications have sent events for a session."""

    __tablename__ = "session_applications"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.session_id", ondelete="CASCADE"), primary_key=True
    )
    application_id: Mapped[int] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True
    )


class ArrivalCounts(db.Model):
    """How many events were stored, and how many refused by kind, per minute of arrival and type.

    Kept by the workers in the same transaction as the events and rejections they count, so the
    errors summary can answer for any window without reading every partition of `events` (which is
    partitioned by the events' own timestamps, not by when they arrived) or of `rejections`.
    `outcome` is "stored" or the refusal's kind; `category` and `name` are "" when a refusal named
    no type. Partitioned by `minute`.
    """

    __tablename__ = "arrival_counts"

    minute: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(32), primary_key=True)
    category: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class ArrivalCountsHourly(db.Model):
    """The same counts per hour of arrival (UTC): the sum of the hour's `arrival_counts` rows.

    Kept by the workers in the same statement as the minute rows (app/storage/arrivals.py), so the
    two always agree; the volume chart reads it for steps of whole hours (a month is 60 times fewer
    rows than in minutes). Partitioned by `hour` (migration 0005), expired as the minutes are.
    """

    __tablename__ = "arrival_counts_hourly"

    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(32), primary_key=True)
    category: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
