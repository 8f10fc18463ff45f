"""account_rules, blacklist, words: the rules an operator configures

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'account_rules',
        sa.Column('account_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('settings', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('account_id', name=op.f('pk_account_rules')),
    )
    op.create_table(
        'blacklist',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('phone', sa.String(length=20), nullable=False),
        sa.Column('reason', sa.String(length=16), nullable=False),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_blacklist')),
        sa.UniqueConstraint('account_id', 'phone', name=op.f('uq_blacklist_account_id_phone')),
    )
    op.create_table(
        'words',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('list', sa.String(length=8), nullable=False),
        sa.Column('word', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_words')),
        sa.UniqueConstraint('list', 'word', name=op.f('uq_words_list_word')),
    )


def downgrade() -> None:
    op.drop_table('words')
    op.drop_table('blacklist')
    op.drop_table('account_rules')
