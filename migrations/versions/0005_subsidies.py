"""Subsidies: policy versions, grants, allocation runs, awards, overrides and free stock.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 21:47:03.484877

"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# The first policy version, as it was when this migration was written.
FIRST_POLICY = {
    "version": 1,
    "weights": {
        "base": "1",
        "budget_band": {"under_50k": "4", "50k_250k": "3", "250k_1m": "2", "over_1m": "1"},
        "people_reached_band": {"under_100": "0", "100_500": "1", "500_2000": "2", "over_2000": "3"},
        "no_public_funding": "2",
        "deprivation_decile": {"1": "3", "2": "3", "3": "2", "4": "2", "5": "1", "6": "1"},
    },
    "max_share": {"naloxone": "1", "oxygen": "1", "pipes": "0.75", "other": "0.5"},
    "priority": ["naloxone", "oxygen", "pipes", "other"],
    "floor_amount": "0.00",
    "member_cap": None,
    "note": "The first policy: naloxone and oxygen first, up to 100% of the bill; pipes up to 75%.",
}


def upgrade():
    op.create_table('subsidy_policies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('weights', sa.JSON(), nullable=False),
    sa.Column('max_share', sa.JSON(), nullable=False),
    sa.Column('priority', sa.JSON(), nullable=False),
    sa.Column('floor_amount', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('member_cap', sa.Numeric(precision=12, scale=2), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('floor_amount >= 0', name=op.f('ck_subsidy_policies_floor_not_negative')),
    sa.CheckConstraint('member_cap IS NULL OR member_cap > 0', name=op.f('ck_subsidy_policies_member_cap_positive')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_subsidy_policies_created_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subsidy_policies')),
    sa.UniqueConstraint('version', name=op.f('uq_subsidy_policies_version'))
    )
    op.create_table('grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=160), nullable=False),
    sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('received_on', sa.Date(), nullable=False),
    sa.Column('restricted_to', sa.String(length=32), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('journal_entry_id', sa.Integer(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('amount > 0', name=op.f('ck_grants_amount_positive')),
    sa.ForeignKeyConstraint(['journal_entry_id'], ['journal_entries.id'], name=op.f('fk_grants_journal_entry_id_journal_entries')),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'], name=op.f('fk_grants_recorded_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grants'))
    )
    op.create_table('subsidy_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('policy_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('preview', 'approved', 'discarded', name='subsidy_run_status', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('inputs', sa.JSON(), nullable=False),
    sa.Column('level', sa.JSON(), nullable=True),
    sa.Column('total_awarded', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('journal_entry_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_subsidy_runs_created_by_id_users')),
    sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], name=op.f('fk_subsidy_runs_decided_by_id_users')),
    sa.ForeignKeyConstraint(['journal_entry_id'], ['journal_entries.id'], name=op.f('fk_subsidy_runs_journal_entry_id_journal_entries')),
    sa.ForeignKeyConstraint(['policy_id'], ['subsidy_policies.id'], name=op.f('fk_subsidy_runs_policy_id_subsidy_policies')),
    sa.ForeignKeyConstraint(['round_id'], ['rounds.id'], name=op.f('fk_subsidy_runs_round_id_rounds')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subsidy_runs'))
    )
    with op.batch_alter_table('subsidy_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subsidy_runs_round_id'), ['round_id'], unique=False)
        batch_op.create_index('uq_subsidy_runs_one_approved_per_round', ['round_id'], unique=True, sqlite_where=sa.text("status = 'approved'"), postgresql_where=sa.text("status = 'approved'"))

    op.create_table('award_overrides',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('superseded_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('amount >= 0', name=op.f('ck_award_overrides_amount_not_negative')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_award_overrides_created_by_id_users')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_award_overrides_organisation_id_organisations')),
    sa.ForeignKeyConstraint(['run_id'], ['subsidy_runs.id'], name=op.f('fk_award_overrides_run_id_subsidy_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_award_overrides'))
    )
    with op.batch_alter_table('award_overrides', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_award_overrides_run_id'), ['run_id'], unique=False)

    op.create_table('awards',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('bill', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('cap', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('binding_limit', sa.String(length=60), nullable=False),
    sa.Column('explanation', sa.JSON(), nullable=False),
    sa.CheckConstraint('amount >= 0', name=op.f('ck_awards_amount_not_negative')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_awards_organisation_id_organisations')),
    sa.ForeignKeyConstraint(['run_id'], ['subsidy_runs.id'], name=op.f('fk_awards_run_id_subsidy_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_awards')),
    sa.UniqueConstraint('run_id', 'organisation_id', 'category', name=op.f('uq_awards_run_id_organisation_id_category'))
    )
    with op.batch_alter_table('awards', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_awards_organisation_id'), ['organisation_id'], unique=False)

    op.create_table('free_stock_awards',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('units', sa.Integer(), nullable=False),
    sa.Column('unit_value', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('journal_entry_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('units > 0', name=op.f('ck_free_stock_awards_units_positive')),
    sa.ForeignKeyConstraint(['journal_entry_id'], ['journal_entries.id'], name=op.f('fk_free_stock_awards_journal_entry_id_journal_entries')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_free_stock_awards_organisation_id_organisations')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_free_stock_awards_product_id_products')),
    sa.ForeignKeyConstraint(['round_id'], ['rounds.id'], name=op.f('fk_free_stock_awards_round_id_rounds')),
    sa.ForeignKeyConstraint(['run_id'], ['subsidy_runs.id'], name=op.f('fk_free_stock_awards_run_id_subsidy_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_free_stock_awards')),
    sa.UniqueConstraint('round_id', 'product_id', 'organisation_id', name=op.f('uq_free_stock_awards_round_id_product_id_organisation_id'))
    )
    with op.batch_alter_table('free_stock_awards', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_free_stock_awards_organisation_id'), ['organisation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_free_stock_awards_round_id'), ['round_id'], unique=False)

    policies = sa.table(
        "subsidy_policies",
        sa.column("version", sa.Integer),
        sa.column("weights", sa.JSON),
        sa.column("max_share", sa.JSON),
        sa.column("priority", sa.JSON),
        sa.column("floor_amount", sa.Numeric(12, 2)),
        sa.column("member_cap", sa.Numeric(12, 2)),
        sa.column("note", sa.Text),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(policies, [{**FIRST_POLICY, "created_at": datetime.now(UTC)}])


def downgrade():
    with op.batch_alter_table('free_stock_awards', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_free_stock_awards_round_id'))
        batch_op.drop_index(batch_op.f('ix_free_stock_awards_organisation_id'))

    op.drop_table('free_stock_awards')
    with op.batch_alter_table('awards', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_awards_organisation_id'))

    op.drop_table('awards')
    with op.batch_alter_table('award_overrides', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_award_overrides_run_id'))

    op.drop_table('award_overrides')
    with op.batch_alter_table('subsidy_runs', schema=None) as batch_op:
        batch_op.drop_index('uq_subsidy_runs_one_approved_per_round', sqlite_where=sa.text("status = 'approved'"), postgresql_where=sa.text("status = 'approved'"))
        batch_op.drop_index(batch_op.f('ix_subsidy_runs_round_id'))

    op.drop_table('subsidy_runs')
    op.drop_table('grants')
    op.drop_table('subsidy_policies')
