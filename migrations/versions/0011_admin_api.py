"""api: admin API keys (hashed) and the audit log of its writes

Revision ID: 0011_admin_api
Revises: 0008
Create Date: 2026-12-10 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db.types


revision = '0011_admin_api'
down_revision = '0010_day_one'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.String(length=8), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash')),
    sa.UniqueConstraint('name', name=op.f('uq_api_keys_name'))
    )
    op.create_table('api_audit',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('key_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('key_name', sa.String(length=64), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('path', sa.String(length=512), nullable=False),
    sa.Column('resource', sa.String(length=128), nullable=False),
    sa.Column('at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_audit'))
    )
    with op.batch_alter_table('api_audit', schema=None) as batch_op:
        batch_op.create_index('ix_api_audit_at', ['at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('api_audit', schema=None) as batch_op:
        batch_op.drop_index('ix_api_audit_at')

    op.drop_table('api_audit')
    op.drop_table('api_keys')
