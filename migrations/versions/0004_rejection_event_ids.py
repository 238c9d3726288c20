"""rejection event ids and replays: a refusal keeps the event_id its item carried, and its replay


"Where is my event?" (GET /api/v1/events/{event_id}) answers with the events stored under an id and
the refusals that carried it; the errors list filters by it. Refusals recorded before this revision
get the event_id of their raw item when it is a JSON object with a valid one (a raw item cut at
8 KiB is not JSON any more: its refusal stays without). A replay (POST /api/v1/errors/replay)
notes on each refusal when it was replayed and with what outcome.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 09:40:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('rejections', sa.Column('event_id', postgresql.UUID(as_uuid=True), nullable=True))
    op.add_column('rejections', sa.Column('replayed_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('rejections', sa.Column('replay_outcome', sa.String(length=40), nullable=True))
    # A session-local function: a raw item that is not JSON, or whose event_id is not a UUID, gives NULL.
    op.execute("""
        CREATE OR REPLACE FUNCTION pg_temp.claimed_event_id(raw text) RETURNS uuid LANGUAGE plpgsql IMMUTABLE AS $$
        BEGIN
            RETURN (raw::jsonb ->> 'event_id')::uuid;
        EXCEPTION WHEN others THEN
            RETURN NULL;
        END $$
    """)
    op.execute("UPDATE rejections SET event_id = pg_temp.claimed_event_id(raw) "
               "WHERE raw LIKE '{%' AND raw LIKE '%\"event_id\"%'")
    op.execute("DROP FUNCTION pg_temp.claimed_event_id(text)")
    # On the partitioned table: PostgreSQL makes it on every partition, and on those made later.
    op.create_index('ix_rejections_event_id', 'rejections', ['event_id'], unique=False)


def downgrade():
    op.drop_index('ix_rejections_event_id', table_name='rejections')
    op.drop_column('rejections', 'replay_outcome')
    op.drop_column('rejections', 'replayed_at')
    op.drop_column('rejections', 'event_id')
