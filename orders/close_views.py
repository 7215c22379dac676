"""Pages for closing a round: the admin's preview and confirmation, the outcome, allocations.

The admin's path has three steps, none needing JavaScript:

1. ``GET /rounds/<id>/close``: per product the options side by side, a radio
   choice each (the base option chosen by default), and the totals; a link per
   product to ``GET /rounds/<id>/close/products/<product_id>``, every member's
   share under each option, a page at a time (the preview itself reads only
   the products' totals, so it stays quick for thousands of members);
2. ``GET /rounds/<id>/close/review?p<product_id>=<units>``: the totals of the
   options chosen, what closing does, and the button that does it (the page
   carries a fingerprint of the commitments it showed);
3. ``POST /rounds/<id>/close``: closes the round (refused with 409 when the
   commitments changed since the review), then the outcome page.

Members see ``/rounds/<id>/allocations``: their units per product, firm and
tolerance parts, and the saving against buying alone; admins see everyone's,
a page at a time (read a page at a time too).
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from buyersclub.accounts.views import current_actor
from buyersclub.db import utcnow
from buyersclub.errors import DomainError, InvalidInput
from buyersclub.organisations.services import organisation_names
from buyersclub.web.paging import page_of, requested_page
from orders.cli import close_due_rounds
from orders.models import RoundStatus
from orders.services import closing, rounds

# cli_group=None: the blueprint brings the cron command ``flask --app buyersclub
# close-due-rounds`` (defined in orders.cli) to the application's top level.
bp = Blueprint("orders_close", __name__, template_folder="templates", cli_group=None)
bp.cli.add_command(close_due_rounds)

ALLOCATIONS_PER_PAGE = 100
MEMBERS_PER_PAGE = 100


@bp.before_request
@login_required
def _signed_in():
    return None


def _require_admin() -> None:
    if not current_user.is_admin:
        abort(403)


def _choices(values: Mapping[str, str], preview: closing.RoundPreview) -> dict[int, int]:
    """``p<product_id>=<units>`` fields of the round's products, as a choice mapping."""
    chosen: dict[int, int] = {}
    for each in preview.products:
        raw = values.get(f"p{each.product_id}")
        if raw in (None, ""):
            continue
        try:
            chosen[each.product_id] = int(raw)
        except ValueError as exc:
            raise InvalidInput(f"{each.product.name}: choose one of the options.",
                               field=f"choices.{each.product_id}") from exc
    return chosen


def _render_preview(preview: closing.RoundPreview, *, choices: Mapping[int, int] | None = None,
                    error: str | None = None, status: int = 200):
    safe = {} if error else dict(choices or {})
    return render_template(
        "orders/close/preview.html", round=preview.round, preview=preview,
        chosen=preview.chosen(safe), totals=preview.totals(safe),
        minimum_met=preview.minimum_met(safe), before_deadline=utcnow() < preview.round.deadline,
        error=error,
    ), status


@bp.get("/rounds/<int:round_id>/close")
def preview(round_id: int):
    _require_admin()
    found = rounds.get_round(current_actor(), round_id)
    if found.status != RoundStatus.OPEN:
        if found.status == RoundStatus.DRAFT:
            flash("This round is a draft: open it before closing it.", "info")
            return redirect(url_for("orders.builder", round_id=round_id))
        return redirect(url_for(".outcome", round_id=round_id))
    return _render_preview(closing.preview_close(current_actor(), round_id))


@bp.get("/rounds/<int:round_id>/close/review")
def review(round_id: int):
    _require_admin()
    found_preview = closing.preview_close(current_actor(), round_id)
    try:
        choices = _choices(request.args, found_preview)
        chosen = found_preview.chosen(choices)
    except InvalidInput as error:
        return _render_preview(found_preview, error=error.message, status=400)
    return render_template(
        "orders/close/review.html", round=found_preview.round, preview=found_preview, choices=choices,
        chosen=chosen, totals=found_preview.totals(choices), minimum_met=found_preview.minimum_met(choices),
        fund_balance=closing.fund_balance(), before_deadline=utcnow() < found_preview.round.deadline,
    )


@bp.post("/rounds/<int:round_id>/close")
def commit(round_id: int):
    _require_admin()
    actor = current_actor()
    try:
        found_preview = closing.preview_close(actor, round_id)
        choices = _choices(request.form, found_preview)
        result = closing.commit_close(actor, round_id, choices,
                                      expected_fingerprint=request.form.get("fingerprint") or None)
    except DomainError as error:
        if error.status in (403, 404):
            raise
        found = rounds.get_round(actor, round_id)
        if found.status != RoundStatus.OPEN:
            flash(error.message, "error")
            return redirect(url_for(".outcome", round_id=round_id))
        return _render_preview(closing.preview_close(actor, round_id), error=error.message,
                               status=error.status)
    flash(f"The round is closed: {result.allocations} allocations recorded"
          f"{' and the journal entry posted' if result.journal_entry else ''}.", "info")
    return redirect(url_for(".outcome", round_id=round_id))


@bp.get("/rounds/<int:round_id>/close/products/<int:product_id>")
def product_allocations(round_id: int, product_id: int):
    """One product's allocation per member under each option, side by side, a page of members at a time."""
    _require_admin()
    found = rounds.get_round(current_actor(), round_id)
    if found.status != RoundStatus.OPEN:
        return redirect(url_for(".preview", round_id=round_id))
    shown = closing.product_allocations(current_actor(), round_id, product_id)
    options = shown.closing.options
    lines = options[0].allocation.members if options and options[0].allocation else ()
    pagination = page_of(len(lines), MEMBERS_PER_PAGE)
    rows = pagination.of(lines)
    return render_template(
        "orders/close/product_allocations.html", round=found, shown=shown, options=options,
        rows=[(line, [option.allocation.for_member(line.member) for option in options]) for line in rows],
        names=organisation_names({line.member for line in rows}), pagination=pagination)




@bp.get("/rounds/<int:round_id>/outcome")
def outcome(round_id: int):
    """What the club bought of each product when the round closed."""
    actor = current_actor()
    found, closings = closing.closings_for(actor, round_id)
    mine = []
    if actor.organisation_id is not None and closings:
        mine = closing.savings_for(actor, round_id, organisation_id=actor.organisation_id)
    totals = closing.Totals(
        revenue=sum((c.revenue for c in closings), closing.ZERO),
        supplier_cost=sum((c.supplier_cost for c in closings), closing.ZERO),
        operating_recovery=sum((c.operating_recovery for c in closings), closing.ZERO),
        margin=sum((c.margin for c in closings), closing.ZERO),
        free_units=sum(c.free_units for c in closings),
        free_units_cost=sum((c.free_units_cost for c in closings), closing.ZERO),
        units=sum(c.units for c in closings),
    )
    return render_template("orders/close/outcome.html", round=found, closings=closings, totals=totals,
                           mine=mine, is_admin=current_user.is_admin)


@bp.get("/rounds/<int:round_id>/allocations")
def allocations(round_id: int):
    """My allocations (member staff), or every member's (admins), with savings against buying alone."""
    actor = current_actor()
    found = rounds.get_round(actor, round_id)
    if not current_user.is_admin and actor.organisation_id is None:
        abort(404)
    page = requested_page()
    shown, total = closing.savings_page(actor, round_id, page=page, per_page=ALLOCATIONS_PER_PAGE)
    pagination = page_of(total, ALLOCATIONS_PER_PAGE)
    if pagination.page != page:  # past the end: the last page
        shown, _ = closing.savings_page(actor, round_id, page=pagination.page, per_page=ALLOCATIONS_PER_PAGE)
    names = organisation_names({row.organisation_id for row in shown}) if current_user.is_admin else {}
    return render_template("orders/close/allocations.html", round=found, rows=shown, names=names,
                           pagination=pagination, is_admin=current_user.is_admin)
