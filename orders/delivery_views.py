"""Pages after the close: the delivery page of a round, the purchase order, receiving with lots,
packing lists and the recall search. Views parse a form, call one service, render or redirect."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional

from buyersclub.accounts.views import current_actor
from buyersclub.errors import DomainError, InvalidInput
from orders import pdf
from orders.delivery_api import purchase_order_pdf
from orders.forms import attach_error
from orders.models import Product, RoundStatus
from orders.services import delivery, rounds

bp = Blueprint("orders_delivery", __name__, template_folder="templates")

MAX_ROWS = 20


@bp.before_request
@login_required
def _signed_in():
    return None


def _require_admin() -> None:
    if not current_user.is_admin:
        abort(403)


class ReceiptForm(FlaskForm):
    received_on = DateField("Arrived on", validators=[InputRequired(message="Give the day it arrived.")])
    note = TextAreaField("Note", validators=[Optional(), Length(max=delivery.MAX_NOTE_LENGTH)],
                         description="e.g. the supplier's delivery note number, damaged cases.")
    last_delivery = BooleanField(
        "This is the last delivery for this round", default=True,
        description="Ticked: receiving is completed now -- shortfalls and surpluses are re-allocated and "
        "lots packed. Untick it when more deliveries are expected.")


class ActionForm(FlaskForm):
    """A button: only the CSRF token."""


@dataclass
class Row:
    quantity: str = ""
    lot: str = ""
    expiry: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def blank(self) -> bool:
        return not (self.quantity.strip() or self.lot.strip() or self.expiry.strip())


def _default_rows(product: Product) -> int:
    return 2 if product.lot_tracked else 1


# --- The delivery page ---------------------------------------------------------------------------


@bp.get("/rounds/<int:round_id>/delivery")
def delivery_page(round_id: int):
    _require_admin()
    summary = delivery.delivery_summary(current_actor(), round_id)
    return render_template("orders/delivery/round.html", summary=summary, round=summary.round,
                           action_form=ActionForm(), statuses=RoundStatus)


@bp.post("/rounds/<int:round_id>/order")
def mark_ordered(round_id: int):
    _require_admin()
    if not ActionForm().validate_on_submit():
        abort(400)
    delivery.mark_ordered(current_actor(), round_id)
    flash("The round is marked ordered: record the delivery when it arrives.", "info")
    return redirect(url_for(".delivery_page", round_id=round_id))


@bp.get("/rounds/<int:round_id>/purchase-order.pdf")
def purchase_order(round_id: int):
    _require_admin()
    order = delivery.purchase_order(current_actor(), round_id)
    return pdf.pdf_response(purchase_order_pdf(order), f"{order.number}.pdf")


@bp.post("/rounds/<int:round_id>/received")
def complete_receiving(round_id: int):
    _require_admin()
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        delivery.complete_receiving(current_actor(), round_id)
    except DomainError as error:
        if error.status != 409:
            raise
        flash(error.message, "error")
        return redirect(url_for(".delivery_page", round_id=round_id))
    flash("Receiving is complete: units are re-allocated where needed and lots packed.", "info")
    return redirect(url_for(".delivery_page", round_id=round_id))


# --- Receiving -----------------------------------------------------------------------------------


def _rows_from_request(items) -> dict[int, list[Row]]:
    rows: dict[int, list[Row]] = {}
    for item in items:
        pid = item.product_id
        try:
            count = int(request.form.get(f"rows-{pid}", ""))
        except ValueError:
            count = _default_rows(item.product)
        count = max(1, min(count, MAX_ROWS))
        rows[pid] = [Row(quantity=request.form.get(f"l-{pid}-{i}-quantity", ""),
                         lot=request.form.get(f"l-{pid}-{i}-lot", ""),
                         expiry=request.form.get(f"l-{pid}-{i}-expiry", ""))
                     for i in range(count)]
    return rows


@bp.route("/rounds/<int:round_id>/receipts/new", methods=["GET", "POST"])
def receive(round_id: int):
    _require_admin()
    actor = current_actor()
    found = rounds.get_round(actor, round_id)
    items = sorted(found.items, key=lambda item: item.product.name)
    form = ReceiptForm()
    if request.method == "GET":
        rows = {item.product_id: [Row() for _ in range(_default_rows(item.product))] for item in items}
        return _render_receive(found, items, form, rows)
    rows = _rows_from_request(items)
    added = request.form.get("add", "")
    if added.isdigit() and int(added) in rows:
        if len(rows[int(added)]) < MAX_ROWS:
            rows[int(added)].append(Row())
        return _render_receive(found, items, form, rows, anchor=int(added))
    valid = form.validate_on_submit()
    lines, where = _lines(rows)
    if not valid:
        return _render_receive(found, items, form, rows, status=400)
    try:
        result = delivery.record_receipt(actor, round_id, received_on=form.received_on.data, lines=lines,
                                         note=form.note.data, last_delivery=bool(form.last_delivery.data))
    except DomainError as error:
        if error.status in (403, 404):
            raise
        _attach(form, items, rows, where, error)
        return _render_receive(found, items, form, rows, status=error.status)
    if result.completed:
        flash("Delivery recorded and receiving completed: units re-allocated where needed, lots packed.",
              "info")
    else:
        flash("Delivery recorded. Record the next one when it arrives, or complete receiving.", "info")
    return redirect(url_for(".delivery_page", round_id=round_id))


def _lines(rows: dict[int, list[Row]]) -> tuple[list[dict], list[tuple[int, int]]]:
    """The filled rows as service lines, and where each line came from (product, row)."""
    lines: list[dict] = []
    where: list[tuple[int, int]] = []
    for pid, product_rows in rows.items():
        for index, row in enumerate(product_rows):
            if row.blank:
                continue
            quantity: object = row.quantity.strip()
            if isinstance(quantity, str) and quantity.isdigit():
                quantity = int(quantity)
            lines.append({"product_id": pid, "quantity": quantity, "lot": row.lot.strip() or None,
                          "expiry": row.expiry.strip() or None})
            where.append((pid, index))
    return lines, where


def _attach(form: ReceiptForm, items, rows: dict[int, list[Row]], where: list[tuple[int, int]],
            error: DomainError) -> None:
    parts = (error.field or "").split(".")
    if parts[0] == "lines" and len(parts) >= 3 and parts[1].isdigit() and int(parts[1]) < len(where):
        pid, index = where[int(parts[1])]
        rows[pid][index].errors[parts[2]] = error.message
        names = {item.product_id: item.product.name for item in items}
        form.form_errors.append(f"{names.get(pid, 'Product')}, row {index + 1}: {error.message}")
        return
    if parts[0] == "lines":
        form.form_errors.append("Enter the units delivered on at least one row." if error.field == "lines"
                                else error.message)
        return
    attach_error(form, error)


def _render_receive(found, items, form, rows, *, status: int = 200, anchor: int | None = None):
    return render_template("orders/delivery/receive.html", round=found, items=items, form=form, rows=rows,
                           max_rows=MAX_ROWS, anchor=anchor,
                           short_dated_days=delivery.SHORT_DATED_DAYS), status


# --- Packing lists and recall --------------------------------------------------------------------


@bp.get("/rounds/<int:round_id>/packing-lists/<int:organisation_id>.pdf")
def packing_list(round_id: int, organisation_id: int):
    """Admins: any member's; member staff: their own organisation's only (404 otherwise)."""
    packing = delivery.packing_list(current_actor(), round_id, organisation_id)
    data = pdf.render_pdf("orders/pdf/packing_list.html", packing=packing)
    return pdf.pdf_response(data, f"packing-list-round-{round_id}-{organisation_id}.pdf")


@bp.get("/recall")
def recall():
    _require_admin()
    lot = request.args.get("lot", "")
    recipients = None
    error = None
    if lot.strip():
        try:
            recipients = delivery.lot_recipients(current_actor(), lot)
        except InvalidInput as refused:
            error = refused.message
    status = 400 if error else 200
    return render_template("orders/delivery/recall.html", lot=lot.strip(), recipients=recipients,
                           error=error, units=sum(r.units for r in recipients or [])), status
