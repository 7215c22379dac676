"""The round lifecycle up to the close: draft, open, extend, cancel.

* A round is built as a draft: supplier, deadline, minimum order, allocation
  policy, operating share and items (product, club price, optional per-member
  cap). Products must belong to the round's supplier, once each.
* Opening publishes the club prices and copies each product's pack size and
  price breaks into its item, so later catalogue edits never change a round in
  progress. A deadline already past is refused.
* An admin may extend an open round's deadline (to a later, future time) and
  cancel a draft or open round with a reason. Cancelling keeps the commitments
  on record (the round's status releases them) and mails the staff of every
  organisation that had committed.
* Members never see drafts: they see rounds once opened, whatever came later.

State changes lock the round row (``FOR UPDATE`` on PostgreSQL); commitments
take a share lock on it (see ``commitments``), so neither interleaves with the
other. Closing the round belongs to the close engine, not to this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Select, select, text
from sqlalchemy.orm import selectinload

from buyersclub import mail
from buyersclub.accounts.models import Role, User
from buyersclub.actor import Actor
from buyersclub.audit.services import record, snapshot
from buyersclub.db import db, utcnow
from buyersclub.errors import Conflict, InvalidInput, NotFound
from orders.models import AllocationPolicy, Commitment, Product, Round, RoundItem, RoundStatus, Supplier
from orders.services.catalogue import breaks_of, clean_money, clean_text, clean_whole_number

MAX_REASON_LENGTH = 2000
ROUND_FIELDS = ("supplier_id", "name", "deadline", "minimum_order", "allocation_policy",
                "operating_share", "shipping_cost", "notes")
DRAFT_CHANGEABLE = ROUND_FIELDS[1:]


# --- Validation ------------------------------------------------------------------


def clean_deadline(value: Any, field: str = "deadline", *, after: datetime | None = None) -> datetime:
    """A timezone-aware time in the future (and later than ``after`` when given)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise InvalidInput("Give the deadline as an ISO 8601 time with its offset, "
                               "e.g. 2026-05-01T17:00:00-04:00.", field=field) from exc
    if not isinstance(value, datetime):
        raise InvalidInput("Give the deadline as an ISO 8601 time with its offset.", field=field)
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput("Give the deadline with its time zone offset, e.g. 17:00:00-04:00 "
                           "or 21:00:00Z.", field=field)
    if value <= utcnow():
        raise InvalidInput("The deadline must be in the future.", field=field)
    if after is not None and value <= after:
        raise InvalidInput("The new deadline must be later than the current one.", field=field)
    return value


def clean_share(value: Any, field: str = "operating_share") -> Decimal:
    """A share such as "0.05": from 0 up to (not including) 1, at most four decimals."""
    if isinstance(value, bool | float):
        raise InvalidInput("Give the operating share as a string such as \"0.05\".", field=field)
    try:
        share = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation as exc:
        raise InvalidInput("Give the operating share as a decimal such as \"0.05\".", field=field) from exc
    if not share.is_finite() or share.as_tuple().exponent < -4:  # type: ignore[operator]
        raise InvalidInput("Give the operating share with at most four decimals.", field=field)
    if not Decimal(0) <= share < 1:
        raise InvalidInput("The operating share must be at least 0 and less than 1.", field=field)
    return share.quantize(Decimal("0.0001"))


def _clean_policy(value: Any) -> AllocationPolicy:
    try:
        return AllocationPolicy(value)
    except ValueError as exc:
        choices = ", ".join(policy.value for policy in AllocationPolicy)
        raise InvalidInput(f"Choose one of: {choices}.", field="allocation_policy") from exc


def _clean_supplier_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("Choose the supplier.", field="supplier_id")
    supplier = db.session.get(Supplier, value)
    if supplier is None:
        raise InvalidInput("There is no supplier with this id.", field="supplier_id")
    if not supplier.is_active:
        raise InvalidInput("This supplier is marked inactive.", field="supplier_id")
    return value


def _clean_round(values: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}

    def wanted(name: str) -> bool:
        return name in values or not partial

    if wanted("supplier_id"):
        cleaned["supplier_id"] = _clean_supplier_id(values.get("supplier_id"))
    if wanted("name"):
        cleaned["name"] = clean_text(values.get("name"), "name", "the round's name", 160, required=True)
    if wanted("deadline"):
        cleaned["deadline"] = clean_deadline(values.get("deadline"))
    for name, label in (("minimum_order", "the supplier's minimum order"),
                        ("shipping_cost", "the shipping cost")):
        if name in values and values[name] is not None:
            cleaned[name] = clean_money(values[name], name, label)
        elif not partial:
            cleaned[name] = Decimal("0.00")
    if "allocation_policy" in values and values["allocation_policy"] is not None:
        cleaned["allocation_policy"] = _clean_policy(values["allocation_policy"])
    if "operating_share" in values and values["operating_share"] is not None:
        cleaned["operating_share"] = clean_share(values["operating_share"])
    if "notes" in values:
        cleaned["notes"] = clean_text(values["notes"], "notes", "the notes", 4000, required=False)
    return cleaned


@dataclass(frozen=True)
class ItemInput:
    product: Product
    club_price: Decimal
    member_cap: int | None


def clean_item(item: Any, supplier_id: int, field: str) -> ItemInput:
    """One offered product: it must be the supplier's and active; a positive club price."""
    if not isinstance(item, Mapping):
        raise InvalidInput("Each item needs product_id, club_price and optionally member_cap.", field=field)
    for name in item:
        if name not in ("product_id", "club_price", "member_cap"):
            raise InvalidInput(f"{name} is not a field of a round item.", field=f"{field}.{name}")
    product_id = item.get("product_id")
    if isinstance(product_id, bool) or not isinstance(product_id, int):
        raise InvalidInput("Choose the product.", field=f"{field}.product_id")
    product = db.session.get(Product, product_id)
    if product is None:
        raise InvalidInput("There is no product with this id.", field=f"{field}.product_id")
    if product.supplier_id != supplier_id:
        raise InvalidInput("This product is not the round's supplier's.", field=f"{field}.product_id")
    if not product.is_active:
        raise InvalidInput("This product is marked inactive.", field=f"{field}.product_id")
    if "club_price" not in item:
        raise InvalidInput("Give the club price.", field=f"{field}.club_price")
    club_price = clean_money(item["club_price"], f"{field}.club_price", "the club price", positive=True)
    cap = item.get("member_cap")
    member_cap = None if cap is None else clean_whole_number(
        cap, f"{field}.member_cap", "the per-member cap", minimum=1)
    return ItemInput(product, club_price, member_cap)


def clean_items(raw: Any, supplier_id: int) -> list[ItemInput]:
    if raw is None:
        return []
    if not isinstance(raw, list | tuple):
        raise InvalidInput("Give a list of items.", field="items")
    items: list[ItemInput] = []
    seen: set[int] = set()
    for index, item in enumerate(raw):
        cleaned = clean_item(item, supplier_id, f"items.{index}")
        if cleaned.product.id in seen:
            raise InvalidInput("This product is already in the round.", field=f"items.{index}.product_id")
        seen.add(cleaned.product.id)
        items.append(cleaned)
    return items


# --- Reading -----------------------------------------------------------------------


def visible_to(actor: Actor, statement: Select) -> Select:
    """Admins see every round; everyone else sees rounds once they have opened."""
    if actor.has_role(Role.ADMIN):
        return statement
    return statement.where(Round.opened_at.is_not(None))


def rounds_for(actor: Actor, *, status: str | None = None, with_items: bool = False) -> Select:
    """The rounds the actor may see, latest deadline first."""
    statement = visible_to(actor, select(Round).options(selectinload(Round.supplier)))
    if with_items:
        statement = statement.options(
            selectinload(Round.items).selectinload(RoundItem.product).selectinload(Product.price_breaks))
    if status:
        try:
            wanted = RoundStatus(status)
        except ValueError as exc:
            choices = ", ".join(item.value for item in RoundStatus)
            raise InvalidInput(f"Choose one of: {choices}.", field="status") from exc
        statement = statement.where(Round.status == wanted)
    return statement.order_by(Round.deadline.desc(), Round.id.desc())


# The namespace of the advisory locks that gate one round (the second key is its id).
ROUND_GATE = 7261


def gate_round(round_id: int, *, exclusive: bool) -> None:
    """Queue for the round's gate until the transaction ends (PostgreSQL).

    Commitments pass it shared, so they run side by side; a state change (a
    close, a cancel, an extension…) passes it exclusive, so it waits for the
    commitments in flight, and commitments that arrive after it queue behind it
    and then find the round changed. Unlike row locks, PostgreSQL queues these
    fairly: a stream of commitments cannot starve a close, and other rounds are
    never held up. SQLite runs one writer at a time anyway.
    """
    if db.session.get_bind().dialect.name != "postgresql":
        return
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    db.session.execute(text(f"SELECT {function}(:gate, :round_id)"),
                       {"gate": ROUND_GATE, "round_id": round_id})


def get_round(actor: Actor, round_id: int, *, lock: str | None = None) -> Round:
    """The round, or NotFound (a member asking for a draft gets NotFound too).

    ``lock`` is ``"update"`` or ``"share"``: the round's gate is passed
    (exclusive or shared, see ``gate_round``), then the row is locked until the
    transaction ends and re-read.
    """
    if lock is not None:
        gate_round(round_id, exclusive=lock != "share")
    statement = visible_to(actor, select(Round).where(Round.id == round_id))
    if lock is not None:
        statement = statement.with_for_update(read=lock == "share").execution_options(
            populate_existing=True)
    found = db.session.scalar(statement)
    if found is None:
        raise NotFound("No such round.")
    return found


def _round_snapshot(found: Round) -> dict[str, Any]:
    data = snapshot(found)
    data["items"] = [
        {"product_id": item.product_id, "club_price": f"{item.club_price:.2f}",
         "member_cap": item.member_cap}
        for item in found.items
    ]
    return data


def _require_status(found: Round, *allowed: RoundStatus, doing: str) -> None:
    if found.status not in allowed:
        raise Conflict(f"This round is {found.status.value}: it cannot be {doing} now.", code="wrong_state")


# After the delivery, the invoices move the round on: received -> invoiced -> settled, and back
# when a void or a refund reopens what was settled.
BILLING_STATES = (RoundStatus.RECEIVED, RoundStatus.INVOICED, RoundStatus.SETTLED)


def set_billing_status(actor: Actor, found: Round, status: RoundStatus, *, because: str) -> bool:
    """Move a delivered round between received, invoiced and settled; True when it changed."""
    if status not in BILLING_STATES or found.status not in BILLING_STATES:
        raise Conflict(f"This round is {found.status.value}: it cannot become {status.value}.",
                       code="wrong_state")
    if found.status == status:
        return False
    before = snapshot(found, ["status"])
    found.status = status
    db.session.flush()
    record(actor, f"round.{status.value}", "round", found.id, before=before,
           after={"status": status, "because": because})
    return True


# --- Building a draft ------------------------------------------------------------------


def create_round(actor: Actor, **values: Any) -> Round:
    """A draft round, with any items given."""
    actor.require(Role.ADMIN)
    for name in values:
        if name not in (*ROUND_FIELDS, "items"):
            raise InvalidInput(f"{name} is not a field of a round.", field=name)
    cleaned = _clean_round(values, partial=False)
    items = clean_items(values.get("items"), cleaned["supplier_id"])
    found = Round(status=RoundStatus.DRAFT, created_by_id=actor.user_id, **cleaned)
    found.items = [RoundItem(product_id=item.product.id, club_price=item.club_price,
                             member_cap=item.member_cap) for item in items]
    db.session.add(found)
    db.session.flush()
    record(actor, "round.created", "round", found.id, after=_round_snapshot(found))
    return found


def update_draft(actor: Actor, round_id: int, changes: Mapping[str, Any]) -> Round:
    """Change a draft's name, deadline, money terms or notes (not its supplier)."""
    actor.require(Role.ADMIN)
    found = get_round(actor, round_id, lock="update")
    _require_status(found, RoundStatus.DRAFT, doing="edited")
    for name in changes:
        if name not in DRAFT_CHANGEABLE:
            raise InvalidInput(f"{name} cannot be changed here.", field=name)
    cleaned = _clean_round(changes, partial=True)
    before = _round_snapshot(found)
    for name, value in cleaned.items():
        setattr(found, name, value)
    db.session.flush()
    after = _round_snapshot(found)
    if after != before:
        record(actor, "round.updated", "round", found.id, before=before, after=after)
    return found


def set_item(actor: Actor, round_id: int, *, product_id: Any, club_price: Any,
             member_cap: Any = None) -> RoundItem:
    """Offer a product in a draft, or change its club price and cap."""
    actor.require(Role.ADMIN)
    found = get_round(actor, round_id, lock="update")
    _require_status(found, RoundStatus.DRAFT, doing="changed")
    try:
        cleaned = clean_item({"product_id": product_id, "club_price": club_price, "member_cap": member_cap},
                             found.supplier_id, "item")
    except InvalidInput as error:
        error.field = error.field.removeprefix("item.") if error.field else None
        raise
    before = _round_snapshot(found)
    item = next((each for each in found.items if each.product_id == cleaned.product.id), None)
    if item is None:
        item = RoundItem(product_id=cleaned.product.id, club_price=cleaned.club_price,
                         member_cap=cleaned.member_cap)
        found.items.append(item)
    else:
        item.club_price = cleaned.club_price
        item.member_cap = cleaned.member_cap
    db.session.flush()
    record(actor, "round.item_set", "round", found.id, before=before, after=_round_snapshot(found))
    return item


def remove_item(actor: Actor, round_id: int, product_id: int) -> Round:
    """Take a product out of a draft (nobody can have committed to a draft)."""
    actor.require(Role.ADMIN)
    found = get_round(actor, round_id, lock="update")
    _require_status(found, RoundStatus.DRAFT, doing="changed")
    item = next((each for each in found.items if each.product_id == product_id), None)
    if item is None:
        raise NotFound("This product is not in the round.", field="product_id")
    before = _round_snapshot(found)
    found.items.remove(item)
    db.session.flush()
    record(actor, "round.item_removed", "round", found.id, before=before, after=_round_snapshot(found))
    return found


# --- Lifecycle -----------------------------------------------------------------------------


def open_round(actor: Actor, round_id: int) -> Round:
    """Publish a draft: club prices fixed, pack sizes and price breaks copied into the items."""
    actor.require(Role.ADMIN)
    found = get_round(actor, round_id, lock="update")
    _require_status(found, RoundStatus.DRAFT, doing="opened")
    if found.deadline <= utcnow():
        raise Conflict("The deadline has passed: set a later one before opening.", field="deadline",
                       code="deadline_passed")
    if not found.items:
        raise Conflict("Add at least one product before opening the round.", field="items",
                       code="no_items")
    for index, item in enumerate(found.items):
        product = item.product
        if not product.is_active:
            raise Conflict(f"{product.name} has been marked inactive: take it out of the round first.",
                           field=f"items.{index}.product_id", code="product_inactive")
        item.pack_size = product.pack_size
        item.price_breaks = [each.as_json() for each in breaks_of(product)]
    before = snapshot(found)
    found.status = RoundStatus.OPEN
    found.opened_at = utcnow()
    db.session.flush()
    record(actor, "round.opened", "round", found.id, before=before, after=_round_snapshot(found))
    return found


def extend_deadline(actor: Actor, round_id: int, deadline: Any) -> Round:
    """Move an open round's deadline later (it may already have passed, if not yet closed)."""
    actor.require(Role.ADMIN)
    found = get_round(actor, round_id, lock="update")
    _require_status(found, RoundStatus.OPEN, doing="extended")
    new_deadline = clean_deadline(deadline, after=found.deadline)
    before = snapshot(found, ["status", "deadline"])
    found.deadline = new_deadline
    db.session.flush()
    record(actor, "round.extended", "round", found.id, before=before,
           after=snapshot(found, ["status", "deadline"]))
    return found


def committed_organisation_ids(round_id: int) -> list[int]:
    """Organisations with a live (non-zero) commitment in the round."""
    return list(db.session.scalars(
        select(Commitment.organisation_id)
        .where(Commitment.round_id == round_id,
               (Commitment.quantity > 0) | (Commitment.tolerance > 0))
        .distinct().order_by(Commitment.organisation_id)
    ))


def cancel_round(actor: Actor, round_id: int, reason: Any) -> Round:
    """Cancel a draft or open round, with the reason; committed members' staff are mailed.

    The commitments stay on record as they were; the cancelled status releases them.
    """
    actor.require(Role.ADMIN)
    found = get_round(actor, round_id, lock="update")
    _require_status(found, RoundStatus.DRAFT, RoundStatus.OPEN, doing="cancelled")
    why = clean_text(reason, "reason", "the reason for cancelling", MAX_REASON_LENGTH, required=True)
    before = snapshot(found, ["status", "cancel_reason"])
    found.status = RoundStatus.CANCELLED
    found.cancel_reason = why
    db.session.flush()
    record(actor, "round.cancelled", "round", found.id, before=before,
           after=snapshot(found, ["status", "cancel_reason"]))
    _mail_committed(found, why)
    return found


def _mail_committed(found: Round, reason: str) -> None:
    organisation_ids = committed_organisation_ids(found.id)
    if not organisation_ids:
        return
    staff: Sequence[User] = db.session.scalars(
        select(User).where(User.organisation_id.in_(organisation_ids), User.is_active.is_(True))
        .order_by(User.organisation_id, User.id)
    ).all()
    subject = f"Round cancelled: {found.name}"
    for person in staff:
        mail.send(
            person.email, subject,
            f"Hello {person.name},\n\nThe buying round \"{found.name}\" has been cancelled.\n\n"
            f"Reason: {reason}\n\nYour organisation's commitments in this round are released: "
            f"nothing will be ordered or invoiced for them. They stay on record on the round's page.\n",
        )
