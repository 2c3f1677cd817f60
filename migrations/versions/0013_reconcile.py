"""growth: the record of each reconciliation run (reconcile_runs)

Revision ID: 0013_reconcile
Revises: 0016_content_revisions
Create Date: 2026-12-06 18:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db.types


revision = '0013_reconcile'
down_revision = '0016_content_revisions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reconcile_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('slot', sa.String(length=40), nullable=True),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('started_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('customers_new', sa.Integer(), nullable=False),
    sa.Column('customers_lost', sa.Integer(), nullable=False),
    sa.Column('members_joined', sa.Integer(), nullable=False),
    sa.Column('members_left', sa.Integer(), nullable=False),
    sa.Column('tags_changed', sa.Integer(), nullable=False),
    sa.Column('followers_new', sa.Integer(), nullable=False),
    sa.Column('followers_lost', sa.Integer(), nullable=False),
    sa.Column('preexisting', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconcile_runs')),
    sa.UniqueConstraint('slot', name=op.f('uq_reconcile_runs_slot'))
    )
    with op.batch_alter_table('reconcile_runs', schema=None) as batch_op:
        batch_op.create_index('ix_reconcile_runs_started', ['started_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('reconcile_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_reconcile_runs_started')

    op.drop_table('reconcile_runs')
