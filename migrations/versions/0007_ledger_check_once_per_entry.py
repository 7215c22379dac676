"""Check each journal entry's balance once, not once per posting (PostgreSQL).

The deferred trigger from 0001 summed an entry's postings for every posting
inserted, which is quadratic in the lines of an entry: a round's close has a
line per member. The trigger still fires per posting (constraint triggers are
row-level), but after checking an entry it remembers that entry's id in a
transaction-local setting and skips the sum for that entry's other postings,
which fire right after it: deferred triggers run at commit, in insertion
order, when every posting of the entry is there.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

CHECK_ONCE = """
CREATE OR REPLACE FUNCTION ledger_entry_balanced() RETURNS trigger AS $$
DECLARE
    entry integer := COALESCE(NEW.entry_id, OLD.entry_id);
    total numeric;
BEGIN
    IF current_setting('buyersclub.ledger_checked_entry', true) = entry::text THEN
        RETURN NULL;
    END IF;
    SELECT COALESCE(SUM(amount), 0) INTO total FROM postings WHERE entry_id = entry;
    IF total <> 0 THEN
        RAISE EXCEPTION 'journal entry % does not balance: postings sum to %', entry, total
            USING ERRCODE = 'check_violation';
    END IF;
    PERFORM set_config('buyersclub.ledger_checked_entry', entry::text, true);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""

CHECK_EVERY_TIME = """
CREATE OR REPLACE FUNCTION ledger_entry_balanced() RETURNS trigger AS $$
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
"""


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CHECK_ONCE)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CHECK_EVERY_TIME)
