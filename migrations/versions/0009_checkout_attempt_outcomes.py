"""Checkout attempts: their outcome, when the session expires, and what finance should look at.

Card payments arrive by Stripe webhook. Each attempt now records where it
stands (open, pending a bank debit, completed, failed, expired), when Stripe
closes its session, what Stripe reported as received, and a ``problem`` --
e.g. the amount paid was not the session's amount or the balance due -- that
the invoice page shows to finance. Existing attempts start as open.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

STATUSES = ("open", "pending", "completed", "failed", "expired")


def upgrade():
    with op.batch_alter_table("checkout_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            "status", sa.Enum(*STATUSES, name="checkout_status", native_enum=False, create_constraint=True,
                              length=32),
            server_default="open", nullable=False))
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("received_cents", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("problem", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("checkout_attempts", schema=None) as batch_op:
        batch_op.drop_column("closed_at")
        batch_op.drop_column("problem")
        batch_op.drop_column("received_cents")
        batch_op.drop_column("expires_at")
        batch_op.drop_constraint(batch_op.f("ck_checkout_attempts_checkout_status"), type_="check")
        batch_op.drop_column("status")
