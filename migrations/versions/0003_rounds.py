"""Rounds: offered items with their club price, commitments and their history.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 21:02:23.757090

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('rounds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=160), nullable=False),
    sa.Column('supplier_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('draft', 'open', 'closed', 'ordered', 'received', 'invoiced', 'settled', 'cancelled', name='round_status', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=False),
    sa.Column('minimum_order', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('allocation_policy', sa.Enum('proportional', 'first_come_first_served', name='allocation_policy', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('operating_share', sa.Numeric(precision=5, scale=4), nullable=False),
    sa.Column('shipping_cost', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('cancel_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('minimum_order >= 0', name=op.f('ck_rounds_minimum_order_not_negative')),
    sa.CheckConstraint('operating_share >= 0 AND operating_share < 1', name=op.f('ck_rounds_operating_share_range')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_rounds_created_by_id_users')),
    sa.ForeignKeyConstraint(['supplier_id'], ['suppliers.id'], name=op.f('fk_rounds_supplier_id_suppliers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rounds'))
    )
    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rounds_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_rounds_supplier_id'), ['supplier_id'], unique=False)

    op.create_table('commitments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('tolerance', sa.Integer(), nullable=False),
    sa.Column('first_committed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('quantity >= 0', name=op.f('ck_commitments_quantity_not_negative')),
    sa.CheckConstraint('tolerance >= 0', name=op.f('ck_commitments_tolerance_not_negative')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_commitments_organisation_id_organisations')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_commitments_product_id_products')),
    sa.ForeignKeyConstraint(['round_id'], ['rounds.id'], name=op.f('fk_commitments_round_id_rounds')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commitments')),
    sa.UniqueConstraint('round_id', 'product_id', 'organisation_id', name=op.f('uq_commitments_round_id_product_id_organisation_id'))
    )
    with op.batch_alter_table('commitments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commitments_organisation_id'), ['organisation_id'], unique=False)
        batch_op.create_index('ix_commitments_round_product', ['round_id', 'product_id'], unique=False)

    op.create_table('round_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('club_price', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('member_cap', sa.Integer(), nullable=True),
    sa.Column('pack_size', sa.Integer(), nullable=True),
    sa.Column('price_breaks', sa.JSON(), nullable=True),
    sa.CheckConstraint('club_price > 0', name=op.f('ck_round_items_club_price_positive')),
    sa.CheckConstraint('member_cap IS NULL OR member_cap > 0', name=op.f('ck_round_items_member_cap_positive')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_round_items_product_id_products')),
    sa.ForeignKeyConstraint(['round_id'], ['rounds.id'], name=op.f('fk_round_items_round_id_rounds')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_round_items')),
    sa.UniqueConstraint('round_id', 'product_id', name=op.f('uq_round_items_round_id_product_id'))
    )
    op.create_table('commitment_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('commitment_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('tolerance', sa.Integer(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['changed_by_id'], ['users.id'], name=op.f('fk_commitment_changes_changed_by_id_users')),
    sa.ForeignKeyConstraint(['commitment_id'], ['commitments.id'], name=op.f('fk_commitment_changes_commitment_id_commitments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commitment_changes'))
    )
    with op.batch_alter_table('commitment_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commitment_changes_commitment_id'), ['commitment_id'], unique=False)



def downgrade():
    with op.batch_alter_table('commitment_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_commitment_changes_commitment_id'))

    op.drop_table('commitment_changes')
    op.drop_table('round_items')
    with op.batch_alter_table('commitments', schema=None) as batch_op:
        batch_op.drop_index('ix_commitments_round_product')
        batch_op.drop_index(batch_op.f('ix_commitments_organisation_id'))

    op.drop_table('commitments')
    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rounds_supplier_id'))
        batch_op.drop_index(batch_op.f('ix_rounds_status'))

    op.drop_table('rounds')
