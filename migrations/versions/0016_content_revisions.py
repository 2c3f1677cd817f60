"""content revisions: every published version of the content directory, drafts, and the live pointer

Revision ID: 0016_content_revisions
Revises: 0012_staff
Create Date: 2026-12-06 18:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db.types

revision = '0016_content_revisions'
down_revision = '0012_staff'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('content_revisions',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('parent_id', BigId, nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('author', sa.String(length=128), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('created_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('published_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('published_by', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_content_revisions'))
    )
    op.create_table('content_revision_files',
    sa.Column('revision_id', BigId, nullable=False),
    sa.Column('path', sa.String(length=512), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('revision_id', 'path', name=op.f('pk_content_revision_files'))
    )
    op.create_table('content_live',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('revision_id', BigId, nullable=False),
    sa.Column('switched_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('switched_by', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_content_live'))
    )


def downgrade() -> None:
    op.drop_table('content_live')
    op.drop_table('content_revision_files')
    op.drop_table('content_revisions')
