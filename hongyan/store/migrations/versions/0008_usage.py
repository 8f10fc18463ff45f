"""account_usage: messages accepted per account per month, for monthly quotas

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'account_usage',
        sa.Column('account_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('period', sa.String(length=6), nullable=False),
        sa.Column('used', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('account_id', 'period', name=op.f('pk_account_usage')),
    )


def downgrade() -> None:
    op.drop_table('account_usage')
