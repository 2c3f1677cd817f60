"""instances: processes with a heartbeat hold receipts and outbox calls (crash recovery without leases); outbox state 'uncertain'

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 13:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db.types


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('instances',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('pid_started', sa.String(length=32), nullable=False),
    sa.Column('started_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('stopped_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instances'))
    )
    with op.batch_alter_table('receipts') as batch:
        batch.add_column(sa.Column('owner', sa.String(length=32), nullable=True))
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('owner', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('maybe_sent', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.alter_column('state', existing_type=sa.String(length=8), type_=sa.String(length=12),
                           existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.alter_column('state', existing_type=sa.String(length=12), type_=sa.String(length=8),
                           existing_nullable=False)
        batch.drop_column('maybe_sent')
        batch.drop_column('owner')
    with op.batch_alter_table('receipts') as batch:
        batch.drop_column('owner')
    op.drop_table('instances')
