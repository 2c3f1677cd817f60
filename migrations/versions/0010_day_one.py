"""day one: import checkpoints, group members' invitor

Revision ID: 0010_day_one
Revises: 0008
Create Date: 2026-12-06 16:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db.types


revision = '0010_day_one'
down_revision = '0009_webhooks_out'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('import_checkpoints',
    sa.Column('list_name', sa.String(length=32), nullable=False),
    sa.Column('position', sa.Text(), nullable=False),
    sa.Column('done', sa.Boolean(), nullable=False),
    sa.Column('updated_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('list_name', name=op.f('pk_import_checkpoints'))
    )
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('invitor', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.drop_column('invitor')

    op.drop_table('import_checkpoints')
