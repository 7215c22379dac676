"""Allocations: drop the round and product foreign keys their product closing already implies.

Closing a round of 5,000 members x 20 products inserts 100,000 allocation
rows in one transaction; on PostgreSQL each row ran four foreign-key checks
(round, product, organisation, product closing), about a third of the whole
close. The round and product checks are redundant:

* every allocation names its ``product_closing_id`` (NOT NULL, still a
  foreign key), and the only writers -- the close and a delivery's
  replacement rows (``orders.services.closing`` / ``delivery``) -- copy
  ``round_id`` and ``product_id`` from that very product closing;
* ``product_closings.round_id`` and ``product_closings.product_id`` are
  themselves foreign keys, so the round and product an allocation names exist;
* rounds and products are never deleted (a round is cancelled or closed, a
  product made inactive), and their product closings' foreign keys would
  refuse it anyway while an allocation points at one of those closings.

The columns and ``ix_allocations_round_product`` stay: they are what the
allocation pages and deliveries query by. The organisation and product
closing foreign keys stay.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_allocations_round_id_rounds"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_allocations_product_id_products"), type_="foreignkey")


def downgrade():
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.create_foreign_key(batch_op.f("fk_allocations_product_id_products"), "products",
                                    ["product_id"], ["id"])
        batch_op.create_foreign_key(batch_op.f("fk_allocations_round_id_rounds"), "rounds",
                                    ["round_id"], ["id"])
