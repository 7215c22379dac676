"""``/api/v1/me`` and ``/api/v1/openapi.json``."""

from __future__ import annotations

from flask import current_app, jsonify
from pydantic import BaseModel

from buyersclub.actor import Actor
from buyersclub.api import openapi
from buyersclub.api.core import ApiBlueprint

bp = ApiBlueprint("api", __name__, tag="account")


class OrganisationRef(BaseModel):
    id: int
    name: str
    status: str


class MeOut(BaseModel):
    id: int
    email: str
    name: str
    roles: list[str]
    organisation: OrganisationRef | None


@bp.endpoint("/me", "GET", summary="The token's user, roles and organisation", response=MeOut)
def me(actor: Actor) -> MeOut:
    user = actor.user
    organisation = user.organisation
    return MeOut(
        id=user.id,
        email=user.email,
        name=user.name,
        roles=sorted(str(role) for role in user.roles),
        organisation=OrganisationRef(id=organisation.id, name=organisation.name,
                                     status=organisation.status.value)
        if organisation is not None else None,
    )


@bp.get("/openapi.json")
def openapi_document():
    """The OpenAPI document, generated from the registered endpoints (no token needed)."""
    return jsonify(openapi.build(current_app))
