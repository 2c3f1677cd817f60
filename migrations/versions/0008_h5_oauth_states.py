"""h5: single-use OAuth states with a server-side expiry

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 13:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db.types


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('h5_oauth_states',
    sa.Column('state', sa.String(length=64), nullable=False),
    sa.Column('expires_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('state', name=op.f('pk_h5_oauth_states'))
    )
    with op.batch_alter_table('h5_oauth_states', schema=None) as batch_op:
        batch_op.create_index('ix_h5_oauth_states_expires_at', ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('h5_oauth_states', schema=None) as batch_op:
        batch_op.drop_index('ix_h5_oauth_states_expires_at')

    op.drop_table('h5_oauth_states')
