"""submissions.window_start / window_end: the request's daily send window, checked again at dispatch

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('submissions') as batch:
        batch.add_column(sa.Column('window_start', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('window_end', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('submissions') as batch:
        batch.drop_column('window_end')
        batch.drop_column('window_start')
