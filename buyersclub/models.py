"""Import every model so the metadata is complete (for Alembic and the app)."""

from buyersclub.accounts.models import ApiToken, LoginAttempt, Role, User, UserRole
from buyersclub.api.models import IdempotencyRecord
from buyersclub.audit.models import AuditEvent
from buyersclub.ledger.models import JournalEntry, LedgerAccount, Posting
from buyersclub.organisations.models import Organisation, OrganisationDocument

__all__ = [
    "ApiToken",
    "AuditEvent",
    "IdempotencyRecord",
    "JournalEntry",
    "LedgerAccount",
    "LoginAttempt",
    "Organisation",
    "OrganisationDocument",
    "Posting",
    "Role",
    "User",
    "UserRole",
]
