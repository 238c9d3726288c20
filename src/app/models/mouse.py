"""Mouse movement: the points of each session, its running totals, and the metric series."""

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class MousePoint(db.Model):
    """One sampled pointer position; the primary key makes a duplicate point count once.

    Partitioned by range of `t` (epoch ms, daily) and kept only as long as a late batch may still
    be folded exactly (EYE_MOUSE_LATE_LIMIT; see storage/mouse.py).
    """

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
    # The session's series lies between these two: they bound its reads to a few partitions.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class MouseMetric(db.Model):
    """One processed batch's metrics, in processing order; partitioned by range of `computed_at`."""

    __tablename__ = "mouse_metrics"
    __table_args__ = (Index("ix_mouse_metrics_session", "session_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                  primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column()
    event_id: Mapped[uuid.UUID] = mapped_column()
    t: Mapped[float] = mapped_column(Float)
    distance: Mapped[float] = mapped_column(Float)
    velocity: Mapped[float] = mapped_column(Float)
    peak_velocity: Mapped[float] = mapped_column(Float)
    points: Mapped[int] = mapped_column(BigInteger)
