"""routes: which channels carry which messages, by account, product and carrier

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'routes',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=True),
        sa.Column('product_id', sa.Integer(), nullable=True),
        sa.Column('carrier', sa.String(length=8), nullable=True),
        sa.Column('channel_id', sa.Integer(), nullable=False),
        sa.Column('weight', sa.Integer(), nullable=False),
        sa.Column('priority', sa.Integer(), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.CheckConstraint('weight >= 1', name='ck_routes_weight_positive'),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_routes_account_id_accounts')),
        sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_routes_product_id_products')),
        sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_routes_channel_id_channels')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_routes')),
    )


def downgrade() -> None:
    op.drop_table('routes')
