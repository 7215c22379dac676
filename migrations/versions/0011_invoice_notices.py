"""Invoices remember when their member was told of them (``notified_at``).

``send-reminders`` (and ``issue-invoices``) now e-mail each new invoice to the
member's staff once. Invoices issued before this migration count as told:
their members found them on their pages, and a first run must not mail them
all.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


# Plain ALTER TABLE, not batch mode: on SQLite (3.35 and later drop columns) a batch would copy the
# table, and dropping the old copy fails while invoice lines and payments refer to it.
def upgrade():
    op.add_column("invoices", sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True))
    invoices = sa.table("invoices", sa.column("notified_at", sa.DateTime(timezone=True)))
    op.execute(invoices.update().values(notified_at=sa.func.current_timestamp()))


def downgrade():
    op.drop_column("invoices", "notified_at")
