"""staff: customer and group handovers, their audit trail, the staff directory, loss alerts

Revision ID: 0012_staff
Revises: 0011_admin_api
Create Date: 2026-12-06 18:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db.types


revision = '0012_staff'
down_revision = '0011_admin_api'
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('staff_transfers',
    sa.Column('id', BIG, autoincrement=True, nullable=False),
    sa.Column('batch', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('from_userid', sa.String(length=64), nullable=False),
    sa.Column('to_userid', sa.String(length=64), nullable=False),
    sa.Column('external_userid', sa.String(length=64), nullable=False),
    sa.Column('customer_id', BIG, nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('status', sa.Integer(), nullable=True),
    sa.Column('errcode', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('outbox_id', BIG, nullable=True),
    sa.Column('requested_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('takeover_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_transfers'))
    )
    with op.batch_alter_table('staff_transfers', schema=None) as batch_op:
        batch_op.create_index('ix_staff_transfers_state', ['state', 'kind', 'from_userid', 'to_userid'], unique=False)
        batch_op.create_index('ix_staff_transfers_customer', ['external_userid'], unique=False)
    op.create_table('staff_group_transfers',
    sa.Column('id', BIG, autoincrement=True, nullable=False),
    sa.Column('batch', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('chat_id', sa.String(length=64), nullable=False),
    sa.Column('from_userid', sa.String(length=64), nullable=False),
    sa.Column('to_userid', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('errcode', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('outbox_id', BIG, nullable=True),
    sa.Column('requested_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_group_transfers'))
    )
    with op.batch_alter_table('staff_group_transfers', schema=None) as batch_op:
        batch_op.create_index('ix_staff_group_transfers_batch', ['batch'], unique=False)
    op.create_table('staff_audit',
    sa.Column('id', BIG, autoincrement=True, nullable=False),
    sa.Column('batch', sa.String(length=32), nullable=False),
    sa.Column('command', sa.String(length=16), nullable=False),
    sa.Column('from_userid', sa.String(length=64), nullable=False),
    sa.Column('rule', sa.String(length=256), nullable=False),
    sa.Column('customers', sa.Integer(), nullable=False),
    sa.Column('groups', sa.Integer(), nullable=False),
    sa.Column('plan', sa.JSON(), nullable=False),
    sa.Column('at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_audit')),
    sa.UniqueConstraint('batch', name=op.f('uq_staff_audit_batch'))
    )
    op.create_table('staff_members',
    sa.Column('userid', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('departments', sa.JSON(), nullable=False),
    sa.Column('updated_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('userid', name=op.f('pk_staff_members'))
    )
    op.create_table('staff_loss_alerts',
    sa.Column('id', BIG, autoincrement=True, nullable=False),
    sa.Column('staff_userid', sa.String(length=64), nullable=False),
    sa.Column('customer_id', BIG, nullable=False),
    sa.Column('receipt_id', BIG, nullable=True),
    sa.Column('lost_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('outbox_id', BIG, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_loss_alerts')),
    sa.UniqueConstraint('receipt_id', name=op.f('uq_staff_loss_alerts_receipt_id'))
    )
    with op.batch_alter_table('staff_loss_alerts', schema=None) as batch_op:
        batch_op.create_index('ix_staff_loss_alerts_pending', ['state', 'staff_userid'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('staff_loss_alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_staff_loss_alerts_pending')
    op.drop_table('staff_loss_alerts')
    op.drop_table('staff_members')
    op.drop_table('staff_audit')
    with op.batch_alter_table('staff_group_transfers', schema=None) as batch_op:
        batch_op.drop_index('ix_staff_group_transfers_batch')
    op.drop_table('staff_group_transfers')
    with op.batch_alter_table('staff_transfers', schema=None) as batch_op:
        batch_op.drop_index('ix_staff_transfers_customer')
        batch_op.drop_index('ix_staff_transfers_state')
    op.drop_table('staff_transfers')
