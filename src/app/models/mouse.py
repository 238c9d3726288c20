"""Mouse movement: the points of each session, its running totals, and the metric series."""

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class MousePoint(db.Model):
    """One sampled pointer position; the primary key makes a duplicate point count once."""

    __tablename__ = "mouse_points"

    session_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Points of different tabs are never joined by a step ("" when the page names no tab).
    tab: Mapped[str] = mapped_column(String(64), primary_key=True)
    t: Mapped[float] = mapped_column(Float, primary_key=True)
    x: Mapped[float] = mapped_column(Float, primary_key=True)
    y: Mapped[float] = mapped_column(Float, primary_key=True)


class MouseTotals(db.Model):
    """A session's running totals; its row is also the lock that serialises the session's batches."""

    __tablename__ = "mouse_totals"

    session_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    distance: Mapped[float] = mapped_column(Float, default=0.0)
    peak_velocity: Mapped[float] = mapped_column(Float, default=0.0)
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class MouseMetric(db.Model):
    """One processed batch's metrics, in processing order."""

    __tablename__ = "mouse_metrics"
    __table_args__ = (Index("ix_mouse_metrics_session", "session_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column()
    event_id: Mapped[uuid.UUID] = mapped_column()
    t: Mapped[float] = mapped_column(Float)
    distance: Mapped[float] = mapped_column(Float)
    velocity: Mapped[float] = mapped_column(Float)
    peak_velocity: Mapped[float] = mapped_column(Float)
    points: Mapped[int] = mapped_column(BigInteger)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
