"""initial schema: applications and keys, events and sessions, the errors store, mouse metrics

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 16:22:34.806735

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    
    op.create_table('applications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('mouse_metrics',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('session_id', sa.Uuid(), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('t', sa.Float(), nullable=False),
    sa.Column('distance', sa.Float(), nullable=False),
    sa.Column('velocity', sa.Float(), nullable=False),
    sa.Column('peak_velocity', sa.Float(), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('mouse_metrics', schema=None) as batch_op:
        batch_op.create_index('ix_mouse_metrics_session', ['session_id', 'id'], unique=False)

    op.create_table('mouse_points',
    sa.Column('session_id', sa.Uuid(), nullable=False),
    sa.Column('tab', sa.String(length=64), nullable=False),
    sa.Column('t', sa.Float(), nullable=False),
    sa.Column('x', sa.Float(), nullable=False),
    sa.Column('y', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('session_id', 'tab', 't', 'x', 'y')
    )
    op.create_table('mouse_totals',
    sa.Column('session_id', sa.Uuid(), nullable=False),
    sa.Column('distance', sa.Float(), nullable=False),
    sa.Column('peak_velocity', sa.Float(), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.PrimaryKeyConstraint('session_id')
    )
    op.create_table('sessions',
    sa.Column('session_id', sa.Uuid(), nullable=False),
    sa.Column('first_event_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_event_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('event_count', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('session_id')
    )
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('application_id', sa.Integer(), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('scopes', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('prefix')
    )
    op.create_table('events',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('application_id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('session_id', sa.Uuid(), nullable=False),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('timestamp', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('application_id', 'event_id', name='uq_events_application_event')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_application_order', ['application_id', 'timestamp', 'received_at', 'id'], unique=False)
        batch_op.create_index('ix_events_order', ['timestamp', 'received_at', 'id'], unique=False)
        batch_op.create_index('ix_events_received', ['received_at'], unique=False)
        batch_op.create_index('ix_events_session_order', ['session_id', 'timestamp', 'received_at', 'id'], unique=False)
        batch_op.create_index('ix_events_type_order', ['category', 'name', 'timestamp', 'received_at', 'id'], unique=False)

    op.create_table('rejections',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('application_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('category', sa.String(length=64), nullable=True),
    sa.Column('name', sa.String(length=64), nullable=True),
    sa.Column('errors', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('raw', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('rejections', schema=None) as batch_op:
        batch_op.create_index('ix_rejections_application_received', ['application_id', 'received_at', 'id'], unique=False)
        batch_op.create_index('ix_rejections_kind_received', ['kind', 'received_at', 'id'], unique=False)
        batch_op.create_index('ix_rejections_received', ['received_at', 'id'], unique=False)

    op.create_table('session_applications',
    sa.Column('session_id', sa.Uuid(), nullable=False),
    sa.Column('application_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.session_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('session_id', 'application_id')
    )



def downgrade():
    
    op.drop_table('session_applications')
    with op.batch_alter_table('rejections', schema=None) as batch_op:
        batch_op.drop_index('ix_rejections_received')
        batch_op.drop_index('ix_rejections_kind_received')
        batch_op.drop_index('ix_rejections_application_received')

    op.drop_table('rejections')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_type_order')
        batch_op.drop_index('ix_events_session_order')
        batch_op.drop_index('ix_events_received')
        batch_op.drop_index('ix_events_order')
        batch_op.drop_index('ix_events_application_order')

    op.drop_table('events')
    op.drop_table('api_keys')
    op.drop_table('sessions')
    op.drop_table('mouse_totals')
    op.drop_table('mouse_points')
    with op.batch_alter_table('mouse_metrics', schema=None) as batch_op:
        batch_op.drop_index('ix_mouse_metrics_session')

    op.drop_table('mouse_metrics')
    op.drop_table('applications')

