"""Account endpoints of the JSON API: a person's own API tokens."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from buyersclub.accounts import services
from buyersclub.accounts.models import ApiToken
from buyersclub.actor import Actor
from buyersclub.api.core import ApiBlueprint, paginate
from buyersclub.db import db
from buyersclub.errors import NotFound

bp = ApiBlueprint("accounts_api", __name__, tag="account")


class TokenOut(BaseModel):
    """A token as listed: never its secret, only the first characters."""

    id: int
    name: str
    prefix: str = Field(description="The token's first characters, to tell tokens apart")
    created_at: datetime
    last_used_at: datetime | None = Field(description="Noted at most once a minute")
    revoked_at: datetime | None


class NewTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=80, description="What the token is for")


class NewTokenOut(TokenOut):
    token: str | None = Field(
        description="The secret, shown this once and never again (null on a replay)"
    )


def _token_out(token: ApiToken) -> TokenOut:
    return TokenOut(
        id=token.id,
        name=token.name,
        prefix=token.prefix,
        created_at=token.created_at,
        last_used_at=token.last_used_at,
        revoked_at=token.revoked_at,
    )


@bp.endpoint("/tokens", "GET", summary="Your API tokens, newest first", response=TokenOut,
             paginated=True)
def list_tokens(actor: Actor):
    """The calling user's own tokens, revoked ones included. Secrets are never shown."""
    return paginate(services.tokens_of(actor.user), _token_out)


@bp.endpoint("/tokens", "POST", summary="Create an API token", body=NewTokenIn,
             response=NewTokenOut, status=201, secret_fields=("token",))
def create_token(actor: Actor, body: NewTokenIn) -> NewTokenOut:
    """A new token for the calling user. The response carries the secret once; keep it safe."""
    token, plain = services.issue_token(actor, actor.user, body.name)
    return NewTokenOut(**_token_out(token).model_dump(), token=plain)


@bp.endpoint("/tokens/<int:token_id>/revoke", "POST", summary="Revoke one of your API tokens",
             response=TokenOut)
def revoke_token(actor: Actor, token_id: int) -> TokenOut:
    """Revoke a token of the calling user (another user's token is 404). Revoking twice is fine."""
    own = db.session.scalar(
        select(ApiToken.id).where(ApiToken.id == token_id, ApiToken.user_id == actor.user_id)
    )
    if own is None:
        raise NotFound("No such token.")
    return _token_out(services.revoke_token(actor, token_id))
