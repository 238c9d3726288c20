"""The errors store: every rejected event, for the data team's monitor."""

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class Rejection(db.Model):
    """Partitioned by range of `received_at` (migration 0003), kept for EYE_ERRORS_RETENTION."""

    __tablename__ = "rejections"
    __table_args__ = (
        Index("ix_rejections_received", "received_at", "id"),
        Index("ix_rejections_kind_received", "kind", "received_at", "id"),
        Index("ix_rejections_application_received", "application_id", "received_at", "id"),
        Index("ix_rejections_event_id", "event_id"),
    )

    # Made by the API when it rejects, so recording the same rejection twice stores it once.
    # (The partition key is part of the primary key, as PostgreSQL requires: the API sets both.)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    application_id: Mapped[int | None] = mapped_column(
        ForeignKey("applications.id", ondelete="SET NULL")
    )
    kind: Mapped[str] = mapped_column(String(32))
    # The event_id the refused item carried, when it had a valid one (migration 0004).
    event_id: Mapped[uuid.UUID | None] = mapped_column()
    category: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(64))
    errors: Mapped[dict] = mapped_column(JSONB)
    # The item as received, whole up to RAW_ITEM_LIMIT (so it can be replayed); a body that could
    # not be read as items, or a larger item, as an 8 KiB excerpt (app/messages.py).
    raw: Mapped[str] = mapped_column(Text)
    # When POST /api/v1/errors/replay last replayed it, and how that went (app/ingest/replay.py).
    replayed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replay_outcome: Mapped[str | None] = mapped_column(String(40))
