"""Closing and delivery: the option chosen per product, allocations, receipts, lots shipped.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 21:39:45.355422

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('receipts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('received_on', sa.Date(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'], name=op.f('fk_receipts_recorded_by_id_users')),
    sa.ForeignKeyConstraint(['round_id'], ['rounds.id'], name=op.f('fk_receipts_round_id_rounds')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_receipts'))
    )
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_receipts_round_id'), ['round_id'], unique=False)

    op.create_table('product_closings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('round_item_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('option_kind', sa.Enum('base', 'jump', name='option_kind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('firm_total', sa.Integer(), nullable=False),
    sa.Column('tolerance_total', sa.Integer(), nullable=False),
    sa.Column('cases', sa.Integer(), nullable=False),
    sa.Column('units', sa.Integer(), nullable=False),
    sa.Column('unit_cost', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('supplier_cost', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('revenue', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('operating_recovery', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('margin', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('free_units', sa.Integer(), nullable=False),
    sa.Column('free_units_cost', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('explanation', sa.Text(), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_by_id', sa.Integer(), nullable=True),
    sa.Column('journal_entry_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('free_units >= 0', name=op.f('ck_product_closings_free_units_not_negative')),
    sa.CheckConstraint('units >= 0', name=op.f('ck_product_closings_units_not_negative')),
    sa.ForeignKeyConstraint(['closed_by_id'], ['users.id'], name=op.f('fk_product_closings_closed_by_id_users')),
    sa.ForeignKeyConstraint(['journal_entry_id'], ['journal_entries.id'], name=op.f('fk_product_closings_journal_entry_id_journal_entries')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_product_closings_product_id_products')),
    sa.ForeignKeyConstraint(['round_id'], ['rounds.id'], name=op.f('fk_product_closings_round_id_rounds')),
    sa.ForeignKeyConstraint(['round_item_id'], ['round_items.id'], name=op.f('fk_product_closings_round_item_id_round_items')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_product_closings')),
    sa.UniqueConstraint('round_item_id', name=op.f('uq_product_closings_round_item_id'))
    )
    with op.batch_alter_table('product_closings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_product_closings_round_id'), ['round_id'], unique=False)

    op.create_table('receipt_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('receipt_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('lot', sa.String(length=60), nullable=True),
    sa.Column('expiry', sa.Date(), nullable=True),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_receipt_lines_quantity_positive')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_receipt_lines_product_id_products')),
    sa.ForeignKeyConstraint(['receipt_id'], ['receipts.id'], name=op.f('fk_receipt_lines_receipt_id_receipts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_receipt_lines'))
    )
    with op.batch_alter_table('receipt_lines', schema=None) as batch_op:
        batch_op.create_index('ix_receipt_lines_lot', ['lot'], unique=False)

    op.create_table('allocations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('product_closing_id', sa.Integer(), nullable=False),
    sa.Column('firm_units', sa.Integer(), nullable=False),
    sa.Column('tolerance_units', sa.Integer(), nullable=False),
    sa.Column('source', sa.Enum('close', 'receipt', name='allocation_source', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('superseded_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('firm_units >= 0 AND tolerance_units >= 0', name=op.f('ck_allocations_units_not_negative')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_allocations_organisation_id_organisations')),
    sa.ForeignKeyConstraint(['product_closing_id'], ['product_closings.id'], name=op.f('fk_allocations_product_closing_id_product_closings')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_allocations_product_id_products')),
    sa.ForeignKeyConstraint(['round_id'], ['rounds.id'], name=op.f('fk_allocations_round_id_rounds')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_allocations'))
    )
    with op.batch_alter_table('allocations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_allocations_organisation_id'), ['organisation_id'], unique=False)
        batch_op.create_index('ix_allocations_round_product', ['round_id', 'product_id'], unique=False)

    op.create_table('lot_shipments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('receipt_line_id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=True),
    sa.Column('lot', sa.String(length=60), nullable=True),
    sa.Column('expiry', sa.Date(), nullable=True),
    sa.Column('units', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('units > 0', name=op.f('ck_lot_shipments_units_positive')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_lot_shipments_organisation_id_organisations')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_lot_shipments_product_id_products')),
    sa.ForeignKeyConstraint(['receipt_line_id'], ['receipt_lines.id'], name=op.f('fk_lot_shipments_receipt_line_id_receipt_lines')),
    sa.ForeignKeyConstraint(['round_id'], ['rounds.id'], name=op.f('fk_lot_shipments_round_id_rounds')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lot_shipments'))
    )
    with op.batch_alter_table('lot_shipments', schema=None) as batch_op:
        batch_op.create_index('ix_lot_shipments_lot', ['lot'], unique=False)
        batch_op.create_index(batch_op.f('ix_lot_shipments_organisation_id'), ['organisation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lot_shipments_round_id'), ['round_id'], unique=False)



def downgrade():
    with op.batch_alter_table('lot_shipments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lot_shipments_round_id'))
        batch_op.drop_index(batch_op.f('ix_lot_shipments_organisation_id'))
        batch_op.drop_index('ix_lot_shipments_lot')

    op.drop_table('lot_shipments')
    with op.batch_alter_table('allocations', schema=None) as batch_op:
        batch_op.drop_index('ix_allocations_round_product')
        batch_op.drop_index(batch_op.f('ix_allocations_organisation_id'))

    op.drop_table('allocations')
    with op.batch_alter_table('receipt_lines', schema=None) as batch_op:
        batch_op.drop_index('ix_receipt_lines_lot')

    op.drop_table('receipt_lines')
    with op.batch_alter_table('product_closings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_product_closings_round_id'))

    op.drop_table('product_closings')
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_receipts_round_id'))

    op.drop_table('receipts')
