"""kxt3_timestamps: timestamps already used per account (kxt3 replay protection)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kxt3_timestamps',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('timestamp', sa.String(length=18), nullable=False),
    sa.Column('used_at', sa.BigInteger(), nullable=False),
    sa.UniqueConstraint('account_id', 'timestamp', name=op.f('uq_kxt3_timestamps_account_id_timestamp'))
    )
    op.create_index('ix_kxt3_timestamps_used_at', 'kxt3_timestamps', ['used_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_kxt3_timestamps_used_at', table_name='kxt3_timestamps')
    op.drop_table('kxt3_timestamps')
