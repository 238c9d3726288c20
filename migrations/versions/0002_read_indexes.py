"""read indexes: events by category alone and by name alone, in time order

The read API filters on each of session_id, category, name, application and time; 0001 covers all
of them but category alone and name alone, which would otherwise scan and sort every event of the
category (or name) to return one page.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 16:40:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_category_order', ['category', 'timestamp', 'received_at', 'id'], unique=False)
        batch_op.create_index('ix_events_name_order', ['name', 'timestamp', 'received_at', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_name_order')
        batch_op.drop_index('ix_events_category_order')
