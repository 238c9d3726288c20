"""Stored events and the sessions they belong to."""

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class Event(db.Model):
    __tablename__ = "events"
    __table_args__ = (
        # A retry of the same event_id from the same application is stored once.
        UniqueConstraint("application_id", "event_id", name="uq_events_application_event"),
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

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"))
    event_id: Mapped[uuid.UUID] = mapped_column()
    session_id: Mapped[uuid.UUID] = mapped_column()
    category: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict] = mapped_column(JSONB)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Set by the API when the request arrived: the tie-breaker after timestamp.
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Session(db.Model):
    """A global session: several applications may send events for one session_id."""

    __tablename__ = "sessions"

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
