"""Initial schema: accounts, organisations, the ledger with its chart, audit and idempotency.

On PostgreSQL the ledger is also guarded by the database: a deferred
constraint trigger refuses a journal entry whose postings do not sum to
zero, and rules refuse UPDATE and DELETE on entries and postings.

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 20:55:04.167252

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

# The chart of accounts as it was when this migration was written
# (buyersclub.ledger.chart may grow; migrations stay frozen).
CHART = [
    ("1000", "Bank", "asset", None),
    ("1010", "Card payments clearing", "asset", None),
    ("1100", "Member receivables", "asset", None),
    ("1200", "Fund free stock", "asset", None),
    ("2000", "Supplier payables", "liability", None),
    ("2100", "Member account credit", "liability", None),
    ("2200", "Sales tax payable", "liability", None),
    ("3000", "Subsidy fund — unrestricted", "equity", None),
    ("3010", "Subsidy fund — restricted to pipes", "equity", "pipes"),
    ("3020", "Subsidy fund — restricted to naloxone", "equity", "naloxone"),
    ("3030", "Subsidy fund — restricted to oxygen", "equity", "oxygen"),
    ("3040", "Subsidy fund — restricted to other", "equity", "other"),
    ("4000", "Sales to members at club price", "income", None),
    ("4100", "Operating cost recovery", "income", None),
    ("4200", "Grants and donations", "income", None),
    ("5000", "Cost of supplies", "expense", None),
    ("5100", "Subsidies awarded", "expense", None),
    ("5200", "Shipping", "expense", None),
]

POSTGRES_GUARDS = [
    """
    CREATE FUNCTION ledger_entry_balanced() RETURNS trigger AS $$
    DECLARE
        entry integer := COALESCE(NEW.entry_id, OLD.entry_id);
        total numeric;
        lines integer;
    BEGIN
        SELECT COALESCE(SUM(amount), 0), COUNT(*) INTO total, lines
          FROM postings WHERE entry_id = entry;
        IF total <> 0 THEN
            RAISE EXCEPTION 'journal entry % does not balance: postings sum to %', entry, total
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END;
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE CONSTRAINT TRIGGER postings_balanced
        AFTER INSERT ON postings
        DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION ledger_entry_balanced()
    """,
    """
    CREATE FUNCTION ledger_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'the ledger is append-only: % on % is refused; post a reversal instead',
            TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END;
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
        FOR EACH ROW EXECUTE FUNCTION ledger_append_only()
    """,
    """
    CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
        FOR EACH ROW EXECUTE FUNCTION ledger_append_only()
    """,
]

POSTGRES_GUARDS_DROP = [
    "DROP TRIGGER journal_entries_append_only ON journal_entries",
    "DROP TRIGGER postings_append_only ON postings",
    "DROP FUNCTION ledger_append_only()",
    "DROP TRIGGER postings_balanced ON postings",
    "DROP FUNCTION ledger_entry_balanced()",
]


def upgrade():
    op.create_table('ledger_accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('type', sa.Enum('asset', 'liability', 'equity', 'income', 'expense', name='account_type', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('restricted_to', sa.String(length=32), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_accounts')),
    sa.UniqueConstraint('code', name=op.f('uq_ledger_accounts_code'))
    )
    op.create_table('login_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('attempted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('succeeded', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_attempts'))
    )
    with op.batch_alter_table('login_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_login_attempts_address_at', ['address', 'attempted_at'], unique=False)
        batch_op.create_index('ix_login_attempts_email_at', ['email', 'attempted_at'], unique=False)

    op.create_table('organisations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=160), nullable=False),
    sa.Column('kind', sa.Enum('syringe_services', 'outreach', 'drug_users_union', 'mutual_aid', 'health_centre', 'other', name='organisation_kind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('status', sa.Enum('applied', 'approved', 'rejected', name='membership_status', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('region', sa.String(length=80), nullable=False),
    sa.Column('site_address_line1', sa.String(length=160), nullable=False),
    sa.Column('site_address_line2', sa.String(length=160), nullable=True),
    sa.Column('site_city', sa.String(length=80), nullable=False),
    sa.Column('site_postal_code', sa.String(length=20), nullable=False),
    sa.Column('site_is_not_a_home', sa.Boolean(), nullable=False),
    sa.Column('tax_exempt_certificate', sa.String(length=80), nullable=True),
    sa.Column('budget_band', sa.Enum('under_50k', '50k_250k', '250k_1m', 'over_1m', name='budget_band', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('people_reached_band', sa.Enum('under_100', '100_500', '500_2000', 'over_2000', name='people_reached_band', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('receives_public_funding', sa.Boolean(), nullable=False),
    sa.Column('receives_private_funding', sa.Boolean(), nullable=False),
    sa.Column('accepts_short_dated', sa.Boolean(), nullable=False),
    sa.Column('low_resource', sa.Boolean(), nullable=False),
    sa.Column('assessment_reason', sa.Text(), nullable=True),
    sa.Column('deprivation_decile', sa.Integer(), nullable=True),
    sa.Column('assessed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('assessed_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('applied_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('deprivation_decile IS NULL OR (deprivation_decile BETWEEN 1 AND 10)', name=op.f('ck_organisations_deprivation_decile_range')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organisations')),
    sa.UniqueConstraint('name', name=op.f('uq_organisations_name'))
    )
    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_organisations_status'), ['status'], unique=False)

    op.create_table('organisation_documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('prescriber_order', 'pipe_authorisation', 'oxygen_training', name='document_kind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('reference', sa.String(length=120), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_organisation_documents_organisation_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organisation_documents'))
    )
    with op.batch_alter_table('organisation_documents', schema=None) as batch_op:
        batch_op.create_index('ix_organisation_documents_org_kind', ['organisation_id', 'kind'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_sign_in_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_users_organisation_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email'))
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_users_organisation_id'), ['organisation_id'], unique=False)

    # Foreign keys from organisations to users close a cycle: added once both tables exist.
    with op.batch_alter_table('organisation_documents', schema=None) as batch_op:
        batch_op.create_foreign_key(batch_op.f('fk_organisation_documents_recorded_by_id_users'), 'users', ['recorded_by_id'], ['id'])
    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.create_foreign_key(batch_op.f('fk_organisations_applied_by_id_users'), 'users', ['applied_by_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_organisations_assessed_by_id_users'), 'users', ['assessed_by_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_organisations_decided_by_id_users'), 'users', ['decided_by_id'], ['id'])

    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_user_id'), ['user_id'], unique=False)

    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_label', sa.String(length=120), nullable=False),
    sa.Column('action', sa.String(length=80), nullable=False),
    sa.Column('entity_type', sa.String(length=40), nullable=False),
    sa.Column('entity_id', sa.Integer(), nullable=True),
    sa.Column('organisation_id', sa.Integer(), nullable=True),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.Column('address', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_audit_events_actor_id_users')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_audit_events_organisation_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_actor_id'), ['actor_id'], unique=False)
        batch_op.create_index('ix_audit_events_at', ['at'], unique=False)
        batch_op.create_index('ix_audit_events_entity', ['entity_type', 'entity_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_organisation_id'), ['organisation_id'], unique=False)

    op.create_table('idempotency_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('method', sa.String(length=10), nullable=False),
    sa.Column('path', sa.String(length=500), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('response_body', sa.Text(), nullable=False),
    sa.Column('location', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_idempotency_records_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_records')),
    sa.UniqueConstraint('user_id', 'key', name=op.f('uq_idempotency_records_user_id_key'))
    )
    op.create_table('journal_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entry_date', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('memo', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('source_type', sa.String(length=40), nullable=True),
    sa.Column('source_id', sa.Integer(), nullable=True),
    sa.Column('reverses_id', sa.Integer(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_journal_entries_created_by_id_users')),
    sa.ForeignKeyConstraint(['reverses_id'], ['journal_entries.id'], name=op.f('fk_journal_entries_reverses_id_journal_entries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journal_entries')),
    sa.UniqueConstraint('reverses_id', name=op.f('uq_journal_entries_reverses_id'))
    )
    with op.batch_alter_table('journal_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_journal_entries_kind'), ['kind'], unique=False)
        batch_op.create_index('ix_journal_entries_source', ['source_type', 'source_id'], unique=False)

    op.create_table('user_roles',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.Enum('member', 'admin', 'finance', name='role', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_roles_user_id_users')),
    sa.PrimaryKeyConstraint('user_id', 'role', name=op.f('pk_user_roles'))
    )
    op.create_table('postings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=True),
    sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('memo', sa.String(length=255), nullable=True),
    sa.CheckConstraint('amount <> 0', name=op.f('ck_postings_amount_not_zero')),
    sa.ForeignKeyConstraint(['account_id'], ['ledger_accounts.id'], name=op.f('fk_postings_account_id_ledger_accounts')),
    sa.ForeignKeyConstraint(['entry_id'], ['journal_entries.id'], name=op.f('fk_postings_entry_id_journal_entries')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_postings_organisation_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_postings'))
    )
    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.create_index('ix_postings_account_org', ['account_id', 'organisation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_postings_entry_id'), ['entry_id'], unique=False)


    chart = sa.table(
        "ledger_accounts",
        sa.column("code", sa.String),
        sa.column("name", sa.String),
        sa.column("type", sa.String),
        sa.column("restricted_to", sa.String),
    )
    op.bulk_insert(chart, [dict(zip(("code", "name", "type", "restricted_to"), row)) for row in CHART])

    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRES_GUARDS:
            op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRES_GUARDS_DROP:
            op.execute(statement)
    # Break the cycle first.
    with op.batch_alter_table('organisation_documents', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_organisation_documents_recorded_by_id_users'), type_='foreignkey')
    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_organisations_applied_by_id_users'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_organisations_assessed_by_id_users'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_organisations_decided_by_id_users'), type_='foreignkey')
    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_postings_entry_id'))
        batch_op.drop_index('ix_postings_account_org')

    op.drop_table('postings')
    op.drop_table('user_roles')
    with op.batch_alter_table('journal_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_journal_entries_source')
        batch_op.drop_index(batch_op.f('ix_journal_entries_kind'))

    op.drop_table('journal_entries')
    op.drop_table('idempotency_records')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_organisation_id'))
        batch_op.drop_index('ix_audit_events_entity')
        batch_op.drop_index('ix_audit_events_at')
        batch_op.drop_index(batch_op.f('ix_audit_events_actor_id'))
        batch_op.drop_index(batch_op.f('ix_audit_events_action'))

    op.drop_table('audit_events')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_user_id'))

    op.drop_table('api_tokens')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_organisation_id'))

    op.drop_table('users')
    with op.batch_alter_table('organisation_documents', schema=None) as batch_op:
        batch_op.drop_index('ix_organisation_documents_org_kind')

    op.drop_table('organisation_documents')
    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_organisations_status'))

    op.drop_table('organisations')
    with op.batch_alter_table('login_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_login_attempts_email_at')
        batch_op.drop_index('ix_login_attempts_address_at')

    op.drop_table('login_attempts')
    op.drop_table('ledger_accounts')
