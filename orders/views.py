"""Pages: the catalogue, rounds and commitments for members; suppliers, products and
the round builder for admins. Views parse a form, call one service, render or redirect."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from wtforms import SelectChoice

from buyersclub.accounts.views import current_actor
from buyersclub.db import db
from buyersclub.errors import DomainError
from buyersclub.organisations.models import DOCUMENT_LABELS
from orders.forms import (
    CATEGORY_LABELS,
    POLICY_LABELS,
    CancelForm,
    CommitmentForm,
    ExtendForm,
    ItemForm,
    ProductForm,
    RoundForm,
    SupplierForm,
    attach_error,
    break_rows,
)
from orders.models import Product, Round, RoundStatus, Supplier
from orders.services import catalogue, commitments, progress, rounds

bp = Blueprint("orders", __name__, template_folder="templates")

PER_PAGE = 50


@bp.before_request
@login_required
def _signed_in():
    return None


def _require_admin() -> None:
    if not current_user.is_admin:
        abort(403)


def _accepting(found) -> bool:
    return found.status == RoundStatus.OPEN and datetime.now(UTC) < found.deadline


@bp.app_context_processor
def _labels():
    return {"category_labels": CATEGORY_LABELS, "policy_labels": POLICY_LABELS,
            "document_labels": DOCUMENT_LABELS}


# --- Catalogue (everyone signed in) ----------------------------------------------------


@bp.get("/catalogue")
def catalogue_page():
    statement = catalogue.products(current_actor())
    page = db.paginate(statement, per_page=PER_PAGE, error_out=False)
    return render_template("orders/catalogue.html", pagination=page, products=page.items)


# --- Rounds (members) ----------------------------------------------------------------------


@bp.get("/rounds")
def rounds_page():
    actor = current_actor()
    found = db.session.scalars(rounds.rounds_for(actor)).all()
    live = [each for each in found if each.status in (RoundStatus.OPEN, RoundStatus.DRAFT)]
    earlier = [each for each in found if each not in live]
    return render_template("orders/rounds.html", live=live, earlier=earlier, accepting=_accepting)


def _render_round(round_id: int, forms: dict[int, CommitmentForm] | None = None, status: int = 200):
    actor = current_actor()
    found, rows = progress.round_progress(actor, round_id)
    forms = forms or {}
    for row in rows:
        if row.item.product_id not in forms:
            form = CommitmentForm(prefix=f"p{row.item.product_id}", formdata=None)
            form.quantity.data = row.mine.quantity if row.mine else 0
            form.tolerance.data = row.mine.tolerance if row.mine else 0
            forms[row.item.product_id] = form
    can_commit = (_accepting(found) and current_user.is_member and current_user.organisation_id is not None)
    return render_template("orders/round.html", round=found, rows=rows, forms=forms,
                           can_commit=can_commit, accepting=_accepting(found)), status


@bp.get("/rounds/<int:round_id>")
def round_page(round_id: int):
    return _render_round(round_id)


@bp.post("/rounds/<int:round_id>/commitments/<int:product_id>")
def commit(round_id: int, product_id: int):
    form = CommitmentForm(prefix=f"p{product_id}")
    if form.validate_on_submit():
        try:
            commitments.set_commitment(current_actor(), round_id, product_id, quantity=form.quantity.data,
                                       tolerance=form.tolerance.data or 0)
        except DomainError as error:
            if error.status in (403, 404) and error.field != "product_id":
                raise
            if error.status == 409:  # the round stopped taking commitments: no form to show it by
                flash(error.message, "error")
            attach_error(form, error)
            return _render_round(round_id, {product_id: form}, error.status)
        flash("Your commitment is saved." if form.quantity.data else "Your commitment is withdrawn.",
              "info")
        return redirect(url_for(".round_page", round_id=round_id, _anchor=f"product-{product_id}"))
    return _render_round(round_id, {product_id: form}, 400)


@bp.get("/my/commitments")
def my_commitments():
    actor = current_actor()
    if actor.organisation_id is None:
        abort(404)
    statement = commitments.my_commitments(actor)
    page = db.paginate(statement, per_page=PER_PAGE, error_out=False)
    round_ids = {each.round_id for each in page.items}
    product_ids = {each.product_id for each in page.items}
    round_names = dict(db.session.execute(select(Round.id, Round.name).where(Round.id.in_(round_ids))).all())
    products = {p.id: p for p in db.session.scalars(select(Product).where(Product.id.in_(product_ids)))}
    return render_template("orders/my_commitments.html", pagination=page, commitments=page.items,
                           round_names=round_names, products=products)


# --- Suppliers (admin) --------------------------------------------------------------------------


@bp.route("/admin/suppliers", methods=["GET", "POST"])
def suppliers_page():
    _require_admin()
    actor = current_actor()
    form = SupplierForm()
    status = 200
    if form.validate_on_submit():
        try:
            supplier = catalogue.create_supplier(actor, **_supplier_values(form))
        except DomainError as error:
            attach_error(form, error)
            status = error.status
        else:
            flash(f"{supplier.name} added.", "info")
            return redirect(url_for(".suppliers_page"))
    elif form.is_submitted():
        status = 400
    found = db.session.scalars(catalogue.suppliers(actor)).all()
    return render_template("orders/suppliers.html", suppliers=found, form=form), status


def _supplier_values(form: SupplierForm) -> dict:
    return {"name": form.name.data, "contact_name": form.contact_name.data,
            "contact_email": form.contact_email.data, "address": form.address.data,
            "is_active": form.is_active.data}


@bp.route("/admin/suppliers/<int:supplier_id>", methods=["GET", "POST"])
def supplier_page(supplier_id: int):
    _require_admin()
    actor = current_actor()
    supplier = catalogue.get_supplier(actor, supplier_id)
    form = SupplierForm(obj=supplier)
    status = 200
    if form.validate_on_submit():
        try:
            catalogue.update_supplier(actor, supplier_id, _supplier_values(form))
        except DomainError as error:
            attach_error(form, error)
            status = error.status
        else:
            flash("Supplier saved.", "info")
            return redirect(url_for(".supplier_page", supplier_id=supplier_id))
    elif form.is_submitted():
        status = 400
    return render_template("orders/supplier.html", supplier=supplier, form=form), status


# --- Products (admin) ----------------------------------------------------------------------------


def _supplier_choices() -> list[SelectChoice]:
    suppliers = db.session.scalars(select(Supplier).order_by(Supplier.name))
    return [SelectChoice(s.id, s.name) for s in suppliers]


def _product_values(form: ProductForm) -> dict:
    breaks = [
        {"min_units": row.form.min_units.data, "unit_cost": row.form.unit_cost.data}
        for row in break_rows(form)
        if row.form.min_units.data is not None or row.form.unit_cost.data
    ]
    places = []
    for line in (form.restrictions.data or "").splitlines():
        line = line.strip()
        if line:
            country, _, region = line.partition("/")
            places.append({"country": country.strip(), "region": region.strip() or None})
    return {
        "sku": form.sku.data, "name": form.name.data, "category": form.category.data, "unit": form.unit.data,
        "pack_size": form.pack_size.data, "price_breaks": breaks, "restricted_jurisdictions": places,
        "required_document": form.required_document.data or None, "lot_tracked": form.lot_tracked.data,
        "description": form.description.data, "is_active": form.is_active.data,
    }


def _fill_product_form(form: ProductForm, product: Product) -> None:
    for row, each in zip(break_rows(form), product.price_breaks, strict=False):
        row.form.min_units.data = each.min_units
        row.form.unit_cost.data = f"{each.unit_cost:.2f}"
    form.restrictions.data = "\n".join(
        f"{r.country}/{r.region}" if r.region else r.country for r in product.restrictions)
    form.required_document.data = product.required_document.value if product.required_document else ""
    form.category.data = product.category.value


@bp.get("/admin/products")
def products_page():
    _require_admin()
    statement = catalogue.products(current_actor(), include_inactive=True)
    page = db.paginate(statement, per_page=PER_PAGE, error_out=False)
    return render_template("orders/products.html", pagination=page, products=page.items)


@bp.route("/admin/products/new", methods=["GET", "POST"])
def new_product():
    _require_admin()
    form = ProductForm()
    form.supplier_id.choices = _supplier_choices()
    status = 200
    if form.validate_on_submit():
        try:
            product = catalogue.create_product(current_actor(), supplier_id=form.supplier_id.data,
                                               **_product_values(form))
        except DomainError as error:
            attach_error(form, error)
            status = error.status
        else:
            flash(f"{product.name} added to the catalogue.", "info")
            return redirect(url_for(".product_page", product_id=product.id))
    elif form.is_submitted():
        status = 400
    return render_template("orders/product_form.html", form=form, product=None,
                           rows=break_rows(form)), status


@bp.route("/admin/products/<int:product_id>", methods=["GET", "POST"])
def product_page(product_id: int):
    _require_admin()
    actor = current_actor()
    product = catalogue.get_product(actor, product_id)
    form = ProductForm(obj=product)
    form.supplier_id.choices = [SelectChoice(product.supplier_id, product.supplier.name)]
    status = 200
    if request.method == "GET":
        _fill_product_form(form, product)
    elif form.validate_on_submit():
        try:
            catalogue.update_product(actor, product_id, _product_values(form))
        except DomainError as error:
            attach_error(form, error)
            status = error.status
        else:
            flash("Product saved.", "info")
            return redirect(url_for(".product_page", product_id=product_id))
    else:
        status = 400
    return render_template("orders/product_form.html", form=form, product=product,
                           rows=break_rows(form)), status


# --- Round builder (admin) ----------------------------------------------------------------------


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@bp.route("/admin/rounds/new", methods=["GET", "POST"])
def new_round():
    _require_admin()
    form = RoundForm()
    form.supplier_id.choices = [SelectChoice(s.id, s.name) for s in catalogue.active_suppliers()]
    status = 200
    if form.validate_on_submit():
        try:
            found = rounds.create_round(
                current_actor(), supplier_id=form.supplier_id.data, name=form.name.data,
                deadline=_aware(form.deadline.data), minimum_order=form.minimum_order.data or "0.00",
                allocation_policy=form.allocation_policy.data,
                operating_share=form.operating_share.data or "0",
                notes=form.notes.data,
            )
        except DomainError as error:
            attach_error(form, error)
            status = error.status
        else:
            flash("Draft round created: now add its products.", "info")
            return redirect(url_for(".builder", round_id=found.id))
    elif form.is_submitted():
        status = 400
    return render_template("orders/round_form.html", form=form), status


def _render_builder(round_id: int, *, item_form=None, extend_form=None, status: int = 200):
    _require_admin()
    actor = current_actor()
    found, rows = progress.round_progress(actor, round_id)
    item_form = item_form or ItemForm(formdata=None)
    item_form.product_id.choices = [
        SelectChoice(p.id, f"{p.name} ({p.sku})")
        for p in db.session.scalars(catalogue.products(actor, supplier_id=found.supplier_id))
    ]
    extend_form = extend_form or ExtendForm(formdata=None)
    return render_template("orders/builder.html", round=found, rows=rows, item_form=item_form,
                           extend_form=extend_form, accepting=_accepting(found)), status


@bp.get("/admin/rounds/<int:round_id>")
def builder(round_id: int):
    return _render_builder(round_id)


@bp.post("/admin/rounds/<int:round_id>/items")
def add_item(round_id: int):
    _require_admin()
    form = ItemForm()
    form.product_id.choices = [SelectChoice(p.id, p.name) for p in db.session.scalars(
        catalogue.products(current_actor(), include_inactive=True))]
    if form.validate_on_submit():
        try:
            rounds.set_item(current_actor(), round_id, product_id=form.product_id.data,
                            club_price=form.club_price.data, member_cap=form.member_cap.data)
        except DomainError as error:
            if error.status == 404 and error.field is None:
                raise
            attach_error(form, error)
            return _render_builder(round_id, item_form=form, status=error.status)
        flash("Product offered in the round.", "info")
        return redirect(url_for(".builder", round_id=round_id))
    return _render_builder(round_id, item_form=form, status=400)


@bp.post("/admin/rounds/<int:round_id>/items/<int:product_id>/remove")
def remove_item(round_id: int, product_id: int):
    _require_admin()
    rounds.remove_item(current_actor(), round_id, product_id)
    flash("Product taken out of the round.", "info")
    return redirect(url_for(".builder", round_id=round_id))


@bp.post("/admin/rounds/<int:round_id>/open")
def open_round(round_id: int):
    _require_admin()
    try:
        rounds.open_round(current_actor(), round_id)
    except DomainError as error:
        if error.status == 404:
            raise
        flash(error.message, "error")
        return _render_builder(round_id, status=error.status)
    flash("The round is open: members can commit until the deadline.", "info")
    return redirect(url_for(".builder", round_id=round_id))


@bp.post("/admin/rounds/<int:round_id>/extend")
def extend_round(round_id: int):
    _require_admin()
    form = ExtendForm()
    if form.validate_on_submit():
        try:
            rounds.extend_deadline(current_actor(), round_id, _aware(form.deadline.data))
        except DomainError as error:
            if error.status == 404:
                raise
            attach_error(form, error)
            return _render_builder(round_id, extend_form=form, status=error.status)
        flash("Deadline extended.", "info")
        return redirect(url_for(".builder", round_id=round_id))
    return _render_builder(round_id, extend_form=form, status=400)


@bp.route("/admin/rounds/<int:round_id>/cancel", methods=["GET", "POST"])
def cancel_round(round_id: int):
    """A confirmation page: what cancelling does, and the reason to send."""
    _require_admin()
    actor = current_actor()
    found = rounds.get_round(actor, round_id)
    form = CancelForm()
    status = 200
    if form.validate_on_submit():
        try:
            rounds.cancel_round(actor, round_id, form.reason.data)
        except DomainError as error:
            if error.status == 404:
                raise
            attach_error(form, error)
            status = error.status
        else:
            flash("The round is cancelled; members who had committed are told why.", "info")
            return redirect(url_for(".builder", round_id=round_id))
    elif form.is_submitted():
        status = 400
    committed = len(rounds.committed_organisation_ids(found.id))
    return render_template("orders/cancel.html", round=found, form=form, committed=committed), status

