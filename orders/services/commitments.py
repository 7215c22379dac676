"""Members' commitments to a round: quantity, tolerance, their gates and history.

Rules, where the SPEC leaves the choice to us:

* ``quantity`` and ``tolerance`` are whole numbers, 0 or more (bools and
  floats refused). Quantity 0 withdraws (tolerance must then be 0 too: a
  tolerance without a quantity is refused). Withdrawing is always allowed
  while the round takes commitments; the gates below apply to commitments
  with a quantity.
* The per-member cap limits the firm ``quantity``. Tolerance comes on top: it
  only ever fills part of a case, so a member may end up with a few units
  above the cap when its tolerance is used.
* Compliance gates (422, with a message saying why):
  - the member's jurisdiction (its country, or country and region) is one
    the product may not be shipped to;
  - the product needs a document on file (prescriber order, oxygen training,
    ...) and the organisation has none of that kind, or its newest one
    expires before the round's deadline date (UTC) — the goods are ordered
    after the deadline, so the document must still be valid then.
* The organisation must be an approved member.
* The deadline is enforced by server time: once it has passed nothing is
  accepted, whether or not anyone has closed the round yet.

Order of commitment (first-come-first-served): ``first_committed_at`` is the
time a commitment first got a quantity. It is kept while the member lowers
its quantity or changes its tolerance; raising the quantity, or committing
again after withdrawing, moves it to the time of that change (the back of
the queue), so nobody can hold an early place with a token quantity. Ties
are broken by the commitment id. The close engine orders by
``(first_committed_at, id)``.

Concurrency: the round row is locked ``FOR SHARE`` (PostgreSQL) and its
status and deadline are re-checked under the lock, so a close or cancel
(which lock it ``FOR UPDATE``) waits for commitments in flight and commitments
wait for it. A member's commitment row is locked ``FOR UPDATE`` while changed;
two first commitments at once by the same member race on the unique key: the
loser's insert runs in a savepoint, is rolled back, and it updates the
winner's row instead.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.audit.services import record, snapshot
from buyersclub.db import db, utcnow
from buyersclub.errors import Conflict, InvalidInput, NotFound, PermissionDenied, RuleRefused
from buyersclub.organisations.models import (
    DOCUMENT_LABELS,
    Organisation,
    OrganisationDocument,
)
from orders.models import Commitment, CommitmentChange, Product, Round, RoundItem, RoundStatus
from orders.services.rounds import get_round

COMMITMENT_FIELDS = ["quantity", "tolerance", "first_committed_at", "updated_at"]


# --- Input --------------------------------------------------------------------------


def _whole(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"Give {field} as a whole number of units (0 or more).", field=field)
    if value < 0:
        raise InvalidInput(f"{field.capitalize()} cannot be negative.", field=field)
    return value


def clean_amounts(quantity: Any, tolerance: Any) -> tuple[int, int]:
    """(quantity, tolerance), or InvalidInput naming the field."""
    if quantity is None:
        raise InvalidInput("Give the quantity (0 withdraws the commitment).", field="quantity")
    quantity = _whole(quantity, "quantity")
    tolerance = 0 if tolerance is None else _whole(tolerance, "tolerance")
    if quantity == 0 and tolerance > 0:
        raise InvalidInput("A tolerance needs a quantity: extra units are only added to an order.",
                           field="tolerance")
    return quantity, tolerance


def _organisation_for(actor: Actor, organisation_id: Any) -> Organisation:
    """The organisation committing: the member's own, or (admin) the one named in the body."""
    if actor.has_role(Role.ADMIN) and organisation_id is not None:
        if isinstance(organisation_id, bool) or not isinstance(organisation_id, int):
            raise InvalidInput("Give the organisation's id.", field="organisation_id")
        organisation = db.session.get(Organisation, organisation_id)
        if organisation is None:
            raise InvalidInput("There is no organisation with this id.", field="organisation_id")
        return organisation
    if actor.has_role(Role.ADMIN) and (actor.organisation_id is None or not actor.has_role(Role.MEMBER)):
        raise InvalidInput("Say which organisation this commitment is for.", field="organisation_id")
    if not actor.has_role(Role.MEMBER) or actor.organisation_id is None:
        raise PermissionDenied("Only a member organisation's staff can commit.")
    if organisation_id is not None and organisation_id != actor.organisation_id:
        raise NotFound("No such organisation.", field="organisation_id")
    organisation = db.session.get(Organisation, actor.organisation_id)
    assert organisation is not None
    return organisation


# --- Gates --------------------------------------------------------------------------


def newest_document(organisation_id: int, kind) -> OrganisationDocument | None:
    return db.session.scalar(
        select(OrganisationDocument)
        .where(OrganisationDocument.organisation_id == organisation_id, OrganisationDocument.kind == kind)
        .order_by(OrganisationDocument.recorded_at.desc(), OrganisationDocument.id.desc())
        .limit(1)
    )


def check_gates(organisation: Organisation, product: Product, deadline: datetime,
                today: date | None = None) -> None:
    """RuleRefused when the organisation may not order this product in a round with this deadline."""
    if not organisation.is_approved:
        raise RuleRefused(f"{organisation.name} is not an approved member yet, so it cannot commit.",
                          code="not_approved")
    for place in product.restrictions:
        if place.country.upper() != organisation.country.upper():
            continue
        if place.region is None or place.region.strip().lower() == organisation.region.strip().lower():
            where = place.country if place.region is None else f"{place.region}, {place.country}"
            note = f" ({place.note})" if place.note else ""
            raise RuleRefused(
                f"{product.name} may not be shipped to {where}, where {organisation.name} is{note}.",
                field="product_id", code="restricted_jurisdiction")
    kind = product.required_document
    if kind is None:
        return
    label = DOCUMENT_LABELS.get(kind, str(kind))
    document = newest_document(organisation.id, kind)
    if document is None:
        raise RuleRefused(
            f"{product.name} needs a {label.lower()} on file. Add it on your organisation's page, "
            f"then commit again.", field="product_id", code="document_missing")
    today = today or utcnow().date()
    needed_until = max(deadline.date(), today)
    if document.expires_on < today:
        raise RuleRefused(
            f"Your {label.lower()} ({document.reference}) expired on {document.expires_on.isoformat()}. "
            f"Add the renewed one on your organisation's page to order {product.name}.",
            field="product_id", code="document_expired")
    if document.expires_on < needed_until:
        raise RuleRefused(
            f"Your {label.lower()} ({document.reference}) expires on {document.expires_on.isoformat()}, "
            f"before this round's deadline on {needed_until.isoformat()}. Add the renewed one on your "
            f"organisation's page to order {product.name}.",
            field="product_id", code="document_expired")


# --- Changing a commitment -----------------------------------------------------------


def _open_for_commitments(actor: Actor, round_id: int) -> Round:
    """The round, share-locked and re-checked: open, and before its deadline by server time."""
    found = get_round(actor, round_id, lock="share")
    if found.status != RoundStatus.OPEN:
        raise Conflict(f"This round is {found.status.value}: commitments cannot be changed.",
                       code="round_not_open")
    if utcnow() >= found.deadline:
        raise Conflict(
            f"The deadline ({found.deadline:%Y-%m-%d %H:%M} UTC) has passed: commitments can no "
            f"longer be changed.", code="deadline_passed")
    return found


def _locked_commitment(round_id: int, product_id: int, organisation_id: int) -> Commitment | None:
    return db.session.scalar(
        select(Commitment)
        .where(Commitment.round_id == round_id, Commitment.product_id == product_id,
               Commitment.organisation_id == organisation_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _insert_or_existing(round_id: int, product_id: int, organisation_id: int,
                        quantity: int, tolerance: int, now: datetime) -> tuple[Commitment, bool]:
    """A new commitment, or the row a concurrent request just inserted (locked)."""
    commitment = Commitment(round_id=round_id, product_id=product_id, organisation_id=organisation_id,
                            quantity=quantity, tolerance=tolerance, first_committed_at=now, updated_at=now)
    try:
        with db.session.begin_nested():
            db.session.add(commitment)
            db.session.flush()
        return commitment, True
    except IntegrityError:
        existing = _locked_commitment(round_id, product_id, organisation_id)
        if existing is None:  # not a unique-key race: a real error
            raise
        return existing, False


def set_commitment(
    actor: Actor,
    round_id: int,
    product_id: int,
    *,
    quantity: Any,
    tolerance: Any = None,
    organisation_id: Any = None,
) -> Commitment | None:
    """Set a member's quantity and tolerance for one product of an open round.

    Returns the commitment, or None when withdrawing something never committed.
    Every real change appends a ``CommitmentChange`` and an audit event.
    """
    quantity, tolerance = clean_amounts(quantity, tolerance)
    organisation = _organisation_for(actor, organisation_id)
    found = _open_for_commitments(actor, round_id)
    item = db.session.scalar(
        select(RoundItem).where(RoundItem.round_id == found.id, RoundItem.product_id == product_id)
    )
    if item is None:
        raise NotFound("This product is not offered in this round.", field="product_id")
    if quantity > 0:
        if item.member_cap is not None and quantity > item.member_cap:
            raise RuleRefused(
                f"Each member may commit to at most {item.member_cap} of {item.product.name} "
                f"in this round.", field="quantity", code="over_member_cap")
        check_gates(organisation, item.product, found.deadline)

    now = utcnow()
    commitment = _locked_commitment(found.id, product_id, organisation.id)
    if commitment is None:
        if quantity == 0:
            return None
        commitment, created = _insert_or_existing(found.id, product_id, organisation.id,
                                                  quantity, tolerance, now)
        if created:
            _remember(actor, commitment, before=None, now=now)
            return commitment

    if (commitment.quantity, commitment.tolerance) == (quantity, tolerance):
        return commitment
    before = snapshot(commitment, COMMITMENT_FIELDS)
    if quantity > commitment.quantity:
        commitment.first_committed_at = now  # more units join the back of the queue
    commitment.quantity = quantity
    commitment.tolerance = tolerance
    commitment.updated_at = now
    _remember(actor, commitment, before=before, now=now)
    return commitment


def _remember(actor: Actor, commitment: Commitment, *, before: dict | None, now: datetime) -> None:
    db.session.add(CommitmentChange(commitment=commitment, quantity=commitment.quantity,
                                    tolerance=commitment.tolerance, changed_at=now,
                                    changed_by_id=actor.user_id))
    db.session.flush()
    action = "commitment.withdrawn" if commitment.quantity == 0 else (
        "commitment.created" if before is None else "commitment.changed")
    after = snapshot(commitment, COMMITMENT_FIELDS)
    after.update(round_id=commitment.round_id, product_id=commitment.product_id)
    record(actor, action, "commitment", commitment.id, before=before, after=after,
           organisation_id=commitment.organisation_id)


# --- Reading ---------------------------------------------------------------------------


def commitments_for(actor: Actor, round_id: int, *, organisation_id: int | None = None,
                    with_history: bool = True) -> Select:
    """A round's commitments: a member's own only; admins all (or one organisation's)."""
    found = get_round(actor, round_id)
    statement = select(Commitment).where(Commitment.round_id == found.id)
    if actor.has_role(Role.ADMIN):
        if organisation_id is not None:
            statement = statement.where(Commitment.organisation_id == organisation_id)
    else:
        if actor.organisation_id is None:
            raise NotFound("You have no commitments here.")
        if organisation_id is not None and organisation_id != actor.organisation_id:
            raise NotFound("No such organisation.", field="organisation_id")
        statement = statement.where(Commitment.organisation_id == actor.organisation_id)
    if with_history:
        statement = statement.options(selectinload(Commitment.changes))
    return statement.order_by(Commitment.organisation_id, Commitment.product_id)


def my_commitments(actor: Actor) -> Select:
    """Every commitment of the actor's organisation, newest round first, with history."""
    if actor.organisation_id is None:
        raise NotFound("You have no commitments.")
    return (
        select(Commitment)
        .join(Round, Round.id == Commitment.round_id)
        .where(Commitment.organisation_id == actor.organisation_id)
        .options(selectinload(Commitment.changes))
        .order_by(Round.deadline.desc(), Round.id.desc(), Commitment.product_id)
    )
