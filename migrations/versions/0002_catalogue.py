"""Catalogue: suppliers, products, price breaks and shipping restrictions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 20:57:55.763819

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('suppliers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=160), nullable=False),
    sa.Column('contact_name', sa.String(length=120), nullable=True),
    sa.Column('contact_email', sa.String(length=254), nullable=True),
    sa.Column('address', sa.Text(), nullable=True),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suppliers')),
    sa.UniqueConstraint('name', name=op.f('uq_suppliers_name'))
    )
    op.create_table('products',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('supplier_id', sa.Integer(), nullable=False),
    sa.Column('sku', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=160), nullable=False),
    sa.Column('category', sa.Enum('pipes', 'naloxone', 'oxygen', 'other', name='product_category', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('unit', sa.String(length=60), nullable=False),
    sa.Column('pack_size', sa.Integer(), nullable=False),
    sa.Column('required_document', sa.Enum('prescriber_order', 'pipe_authorisation', 'oxygen_training', name='required_document', native_enum=False, create_constraint=True, length=32), nullable=True),
    sa.Column('lot_tracked', sa.Boolean(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('pack_size > 0', name=op.f('ck_products_pack_size_positive')),
    sa.ForeignKeyConstraint(['supplier_id'], ['suppliers.id'], name=op.f('fk_products_supplier_id_suppliers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_products')),
    sa.UniqueConstraint('supplier_id', 'sku', name=op.f('uq_products_supplier_id_sku'))
    )
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_products_supplier_id'), ['supplier_id'], unique=False)

    op.create_table('price_breaks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('min_units', sa.Integer(), nullable=False),
    sa.Column('unit_cost', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.CheckConstraint('min_units >= 1', name=op.f('ck_price_breaks_min_units_positive')),
    sa.CheckConstraint('unit_cost > 0', name=op.f('ck_price_breaks_unit_cost_positive')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_price_breaks_product_id_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_price_breaks')),
    sa.UniqueConstraint('product_id', 'min_units', name=op.f('uq_price_breaks_product_id_min_units'))
    )
    op.create_table('product_restrictions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('region', sa.String(length=80), nullable=True),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_product_restrictions_product_id_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_product_restrictions')),
    sa.UniqueConstraint('product_id', 'country', 'region', name=op.f('uq_product_restrictions_product_id_country_region'))
    )


def downgrade():
    op.drop_table('product_restrictions')
    op.drop_table('price_breaks')
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_products_supplier_id'))

    op.drop_table('products')
    op.drop_table('suppliers')
