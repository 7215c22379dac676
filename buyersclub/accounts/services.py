"""Operations on accounts. They flush, audit and never commit."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Select, func, or_, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from buyersclub.accounts.models import ApiToken, LoginAttempt, Role, User, UserRole
from buyersclub.actor import Actor
from buyersclub.audit.services import record, snapshot
from buyersclub.db import db, utcnow
from buyersclub.errors import Conflict, InvalidInput, NotFound, PermissionDenied

MIN_PASSWORD_LENGTH = 12
TOKEN_PREFIX = "bc_"


def normalise_email(value: str, field: str = "email") -> str:
    try:
        return validate_email(
            value.strip(), check_deliverability=False, test_environment=True
        ).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidInput(f"Enter a valid e-mail address ({exc}).", field=field) from exc


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def check_password(user: User, password: str) -> bool:
    return user.password_hash is not None and check_password_hash(user.password_hash, password)


def validate_password(password: str, field: str = "password") -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters.", field=field
        )


def user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email.strip().lower()))


def create_user(
    actor: Actor,
    *,
    email: str,
    name: str,
    password: str | None,
    roles: tuple[Role, ...] = (),
    organisation_id: int | None = None,
) -> User:
    email = normalise_email(email)
    name = name.strip()
    if not name:
        raise InvalidInput("Enter the person's name.", field="name")
    if user_by_email(email) is not None:
        raise Conflict("An account with this e-mail address already exists.", field="email")
    if password is not None:
        validate_password(password)
    user = User(
        email=email,
        name=name,
        password_hash=hash_password(password) if password is not None else None,
        organisation_id=organisation_id,
    )
    user.role_grants = [UserRole(role=Role(role)) for role in sorted(set(roles))]
    db.session.add(user)
    db.session.flush()
    record(
        actor,
        "user.create",
        "user",
        user.id,
        after={**snapshot(user), "roles": sorted(user.roles)},
        organisation_id=organisation_id,
    )
    return user


def grant_role(actor: Actor, user: User, role: Role) -> None:
    actor.require(Role.ADMIN)
    if role in user.roles:
        return
    before = sorted(user.roles)
    user.role_grants.append(UserRole(role=role))
    db.session.flush()
    record(actor, "user.grant_role", "user", user.id, before={"roles": before},
           after={"roles": sorted(user.roles)}, organisation_id=user.organisation_id)


def set_password(actor: Actor, user: User, password: str) -> None:
    validate_password(password)
    user.password_hash = hash_password(password)
    db.session.flush()
    record(actor, "user.set_password", "user", user.id, organisation_id=user.organisation_id)


# --- API tokens -------------------------------------------------------------


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(actor: Actor, user: User, name: str) -> tuple[ApiToken, str]:
    """Create a token; the plain text is returned once and never stored.

    People make tokens for themselves; the command line (a system actor) may
    make one for any account.
    """
    if not actor.is_system and actor.user_id != user.id:
        raise PermissionDenied("You can only create API tokens for your own account.")
    name = name.strip() or "API token"
    if len(name) > 80:
        raise InvalidInput("Keep the token's name under 80 characters.", field="name")
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, token_hash=_digest(plain), prefix=plain[:10])
    db.session.add(token)
    db.session.flush()
    record(actor, "api_token.create", "api_token", token.id,
           after={"name": name, "prefix": token.prefix, "user_id": user.id},
           organisation_id=user.organisation_id)
    return token, plain


LAST_USED_RESOLUTION = timedelta(minutes=1)


def user_for_token(plain: str) -> User | None:
    """The active user behind a bearer token, or None; notes when the token was used.

    ``last_used_at`` is written at most once a minute per token, so a busy
    integration does not turn every read into a write. The write skips a row
    another request is already updating (PostgreSQL ``SKIP LOCKED``): concurrent
    requests with one token never wait for each other over a timestamp.
    """
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(plain)))
    if token is None or token.revoked_at is not None or not token.user.is_active:
        return None
    now = utcnow()
    stale = now - LAST_USED_RESOLUTION
    if token.last_used_at is None or token.last_used_at <= stale:
        claim = (
            select(ApiToken.id)
            .where(
                ApiToken.id == token.id,
                or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= stale),
            )
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        db.session.execute(
            update(ApiToken).where(ApiToken.id == claim).values(last_used_at=now),
            execution_options={"synchronize_session": False},
        )
    return token.user


def tokens_of(user: User) -> Select:
    """The user's own tokens, newest first (revoked ones included, marked as such)."""
    return (
        select(ApiToken)
        .where(ApiToken.user_id == user.id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )


def revoke_token(actor: Actor, token_id: int) -> ApiToken:
    token = db.session.get(ApiToken, token_id)
    if token is None or (not actor.has_role(Role.ADMIN) and token.user_id != actor.user_id):
        raise NotFound("No such token.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        db.session.flush()
        record(actor, "api_token.revoke", "api_token", token.id,
               after={"revoked_at": token.revoked_at}, organisation_id=token.user.organisation_id)
    return token


# --- Signing in, with throttling -------------------------------------------


class SignInThrottled(Exception):
    """Too many failed attempts for this account or address."""

    def __init__(self, minutes: int):
        super().__init__(minutes)
        self.minutes = minutes


def _recent_failures(column, value: str, since) -> int:
    return db.session.scalar(
        select(func.count()).select_from(LoginAttempt).where(
            column == value, LoginAttempt.attempted_at >= since,
            LoginAttempt.succeeded.is_(False),
        )
    )


def authenticate(email: str, password: str, address: str, *, limit: int, window_minutes: int) -> User | None:
    """The user for these credentials, or None. Every attempt is recorded.

    Raises ``SignInThrottled`` once ``limit`` failures were recorded within the
    window for the account or for the address, whatever the password given.
    """
    email = email.strip().lower()
    now = utcnow()
    since = now - timedelta(minutes=window_minutes)
    if (
        _recent_failures(LoginAttempt.email, email, since) >= limit
        or _recent_failures(LoginAttempt.address, address, since) >= limit
    ):
        raise SignInThrottled(window_minutes)
    user = user_by_email(email)
    ok = user is not None and user.is_active and check_password(user, password)
    db.session.add(LoginAttempt(email=email[:254], address=address[:64], attempted_at=now, succeeded=ok))
    if ok:
        user.last_sign_in_at = now
    db.session.flush()
    return user if ok else None


# --- Password reset and invitations (signed, single-use tokens) -------------

RESET_SALT = "password-reset"
INVITE_SALT = "invitation"


def _serializer(salt: str):
    from flask import current_app
    from itsdangerous import URLSafeTimedSerializer

    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def _fingerprint(user: User) -> str:
    # Changes when the password does, so a used link stops working.
    return hashlib.sha256((user.password_hash or "unset").encode()).hexdigest()[:16]


def make_password_token(user: User, salt: str = RESET_SALT) -> str:
    return _serializer(salt).dumps({"user": user.id, "fp": _fingerprint(user)})


def user_for_password_token(token: str, max_age: int, salt: str = RESET_SALT) -> User | None:
    from itsdangerous import BadSignature

    try:
        data = _serializer(salt).loads(token, max_age=max_age)
    except BadSignature:
        return None
    user = db.session.get(User, data.get("user"))
    if user is None or not user.is_active or data.get("fp") != _fingerprint(user):
        return None
    return user


def request_password_reset(email: str, reset_url) -> None:
    """Mail a reset link if the account exists; say nothing either way."""
    from buyersclub import mail

    try:
        email = normalise_email(email)
    except InvalidInput:
        return
    user = user_by_email(email)
    if user is None or not user.is_active:
        return
    link = reset_url(make_password_token(user))
    mail.send(
        user.email,
        "Reset your password",
        f"Hello {user.name},\n\nSomeone asked to reset the password of this account. "
        f"To choose a new password, open this link within the hour:\n\n{link}\n\n"
        "If it was not you, ignore this message: the password stays as it is.\n",
    )
    record(Actor.system("password-reset"), "user.password_reset_requested", "user", user.id,
           organisation_id=user.organisation_id)


def invite_colleague(actor: Actor, organisation_id: int, *, email: str, name: str, invite_url) -> User:
    """Create a member account without a password and mail the invitation link."""
    from buyersclub import mail

    actor.require_own_organisation(organisation_id, Role.ADMIN)
    user = create_user(actor, email=email, name=name, password=None, roles=(Role.MEMBER,),
                       organisation_id=organisation_id)
    link = invite_url(make_password_token(user, INVITE_SALT))
    inviter = actor.user.name if actor.user is not None else "The club"
    mail.send(
        user.email,
        "You are invited to the buyers' club",
        f"Hello {user.name},\n\n{inviter} invited you to your organisation's account at the "
        f"buyers' club. Choose a password to start:\n\n{link}\n\nThe link works for seven days.\n",
    )
    return user
