"""Who is acting: passed explicitly to every service that changes data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from buyersclub.errors import NotFound, PermissionDenied

if TYPE_CHECKING:
    from buyersclub.accounts.models import Role, User


@dataclass(frozen=True)
class Actor:
    user: User | None
    label: str
    address: str | None = None

    @classmethod
    def for_user(cls, user: User, address: str | None = None) -> Actor:
        return cls(user=user, label=user.email, address=address)

    @classmethod
    def system(cls, label: str) -> Actor:
        """The command line, a scheduled job or a webhook: trusted, no user."""
        return cls(user=None, label=label)

    @property
    def user_id(self) -> int | None:
        return self.user.id if self.user is not None else None

    @property
    def is_system(self) -> bool:
        return self.user is None

    def has_role(self, *roles: Role | str) -> bool:
        return self.is_system or (self.user is not None and self.user.has_role(*roles))

    def require(self, *roles: Role | str) -> None:
        if not self.has_role(*roles):
            names = " or ".join(str(role) for role in roles)
            raise PermissionDenied(f"This needs the {names} role.")

    @property
    def organisation_id(self) -> int | None:
        return self.user.organisation_id if self.user is not None else None

    def require_own_organisation(self, organisation_id: int, *staff_roles: Role | str) -> None:
        """Pass for staff roles; for a member, only its own organisation (else 404)."""
        if staff_roles and self.has_role(*staff_roles):
            return
        if self.user is None or self.user.organisation_id != organisation_id:
            raise NotFound("No such organisation.")
