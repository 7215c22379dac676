"""Refunds that Stripe could not make: when, why, and the entry that put the money back.

A card refund can fail after it was made (the card was closed, the bank
refused it): Stripe then returns the money to the club's balance and sends
``charge.refund.updated``. The refund row stays, as every document does; it
is marked failed, and a second journal entry reverses what the refund moved.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("failure_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("failure_entry_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f("fk_refunds_failure_entry_id_journal_entries"), "journal_entries",
                                    ["failure_entry_id"], ["id"])


def downgrade():
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_refunds_failure_entry_id_journal_entries"), type_="foreignkey")
        batch_op.drop_column("failure_entry_id")
        batch_op.drop_column("failure_reason")
        batch_op.drop_column("failed_at")
