"""Pages for the fund's allocation runs, the awards report, and what members see.

Admins, at ``/rounds/<id>/subsidies``: the runs of the round, the shown run's
awards per member (award, % of bill, binding limit, why), a button that starts
a preview, an override form (a reason is required), approval with a
confirmation step, and discard. ``/rounds/<id>/subsidies/report``: the
round's awards by budget band; small cells are hidden from everyone but
admins. Members, at ``/subsidies/my-awards``: their own awards and free units,
with the reasons in plain words. None of it needs JavaScript.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from buyersclub.accounts.views import current_actor
from buyersclub.db import db
from buyersclub.errors import DomainError
from buyersclub.money import format_money, from_cents
from buyersclub.organisations.models import BUDGET_LABELS, Organisation
from buyersclub.organisations.services import organisation_names
from buyersclub.web.forms import show_on_form
from buyersclub.web.paging import page_of
from orders.models import Product
from orders.services import rounds
from subsidies.models import Award, RunStatus, SubsidyRun
from subsidies.services import runs

bp = Blueprint("subsidies_runs", __name__, template_folder="templates")

MEMBERS_PER_PAGE = 100
BAND_LABELS = {**{str(band): label for band, label in BUDGET_LABELS.items()}, "all": "All bands"}
LIMIT_LABELS = {
    "level": "level",
    "level+leftover cent": "level + leftover cent",
    "cap": "cap",
    "floor": "floor",
    "floor scaled down": "floor, scaled down",
    "floor scaled down+leftover cent": "floor, scaled down + leftover cent",
    "override": "override",
    "not eligible": "not eligible",
}


@bp.before_request
@login_required
def _signed_in():
    return None


def _require_admin() -> None:
    if not current_user.is_admin:
        abort(403)


class StartRunForm(FlaskForm):
    pass


class OverrideForm(FlaskForm):
    organisation_id = SelectField("Member", coerce=int, validators=[DataRequired()])
    category = SelectField("Category", validators=[Optional()])
    amount = StringField("Award amount", validators=[DataRequired(message="Enter the amount.")],
                         description='With two decimals, e.g. "150.00". At most the bill.')
    reason = TextAreaField("Reason", validators=[DataRequired(message="Say why this award is overridden."),
                                                 Length(max=runs.REASON_LENGTH)])


class DecideForm(FlaskForm):
    confirm = HiddenField(default="yes")


# --- Plain words ------------------------------------------------------------------------


def _number(ratio_text: str) -> str:
    """``"23/2"`` as ``11.5``; ``"11/1"`` as ``11``."""
    value = Fraction(ratio_text)
    if value.denominator == 1:
        return str(value.numerator)
    text = f"{Decimal(value.numerator) / Decimal(value.denominator):.4f}".rstrip("0").rstrip(".")
    return text


def _percent(text: str) -> str:
    """``"9.9000"`` as ``9.9``."""
    return text.rstrip("0").rstrip(".") if "." in text else text


def weight_in_words(explanation: dict[str, Any]) -> str:
    parts = ", ".join(f"{_number(points)} for {what}" if what != "base" else f"{_number(points)} to start"
                      for what, points in explanation.get("weight_parts", []))
    return f"{_number(explanation['weight'])} ({parts})" if parts else _number(explanation["weight"])


def why(award: Award, *, you: bool = True) -> str:
    """Why an award is what it is, in plain words."""
    explanation = award.explanation
    whose = "your" if you else "its"
    category = award.category
    if explanation.get("limit") == "not eligible" or not explanation.get("eligible", True):
        return ("Subsidies go to members assessed as low-resource; "
                f"{whose} organisation was not assessed as low-resource for this round.")
    head = f"{'Your' if you else 'Its'} need weight is {weight_in_words(explanation)}. "
    rate = (f"This round the fund could pay {_percent(explanation['percent_per_point'])} % of each "
            f"eligible {category} bill per point of weight; ")
    limit = explanation.get("limit", "")
    bill = award.bill
    share = f"{_percent(explanation.get('percent_of_bill', '0'))} %"
    if limit == "override":
        return (head + f"An administrator set {whose} {category} award to {format_money(award.amount)} "
                f"({share} of the bill): {explanation.get('reason') or ''}").rstrip(": ")
    if limit == "cap":
        cap_share = f"{_percent(f'{(award.cap * 100 / bill):.2f}')} %" if bill else "0 %"
        return head + rate + (f"{whose} {category} award reached its cap of {cap_share} of the bill "
                              f"({format_money(award.cap)}).")
    if limit == "floor":
        floor = from_cents(int(explanation.get("floor_cents", 0)))
        return head + rate + (f"{whose} {category} award was raised to the guaranteed minimum of "
                              f"{format_money(floor)}.")
    if limit.startswith("floor scaled down"):
        return head + ("The fund could not cover every member's guaranteed minimum this round, so each got "
                       f"the same share of it: {whose} {category} award is {share} of the bill.")
    text = head + rate + f"{whose} {category} award is {share} of the bill, rounded down to the cent"
    if limit.endswith("leftover cent"):
        text += ", plus one of the cents left over by rounding"
    return text + "."


def limit_label(limit: str) -> str:
    return LIMIT_LABELS.get(limit, limit)


@bp.app_template_global("subsidy_why")
def _why_global(award: Award, you: bool = True) -> str:
    return why(award, you=you)


# --- Admin: the round's runs -------------------------------------------------------------


def _shown_run(all_runs: list[SubsidyRun], wanted: int | None) -> SubsidyRun | None:
    if wanted is not None:
        return next((run for run in all_runs if run.id == wanted), None)
    approved = next((run for run in all_runs if run.status == RunStatus.APPROVED), None)
    if approved is not None:
        return approved
    return next((run for run in all_runs if run.status == RunStatus.PREVIEW), None)


def _override_form(run: SubsidyRun, form: OverrideForm | None = None) -> OverrideForm:
    form = form or OverrideForm()
    eligible = [member for member in run.inputs["members"] if member["eligible"]]
    names = dict(db.session.execute(
        select(Organisation.id, Organisation.name)
        .where(Organisation.id.in_([member["key"] for member in eligible]))).all()) if eligible else {}
    form.organisation_id.choices = sorted(((key, names.get(key, f"#{key}")) for key in names),
                                          key=lambda choice: choice[1].lower())
    categories = sorted({category for member in eligible for category in member["bills"]})
    form.category.choices = [("", "The member's only billed category")] + [(c, c.capitalize())
                                                                           for c in categories]
    return form


def _render_round(round_id: int, *, run_id: int | None = None, form: OverrideForm | None = None,
                  error: str | None = None, status: int = 200):
    actor = current_actor()
    found = rounds.get_round(actor, round_id)
    all_runs = runs.runs_for_round(actor, round_id)
    run = _shown_run(all_runs, run_id if run_id is not None else request.args.get("run", type=int))
    rows: list[tuple[str, list[Award]]] = []
    pagination = page_of(0, MEMBERS_PER_PAGE)
    planned: list[tuple[str, str, int, Decimal]] = []
    if run is not None:
        members = db.session.scalar(select(func.count(func.distinct(Award.organisation_id)))
                                    .where(Award.run_id == run.id)) or 0
        pagination = page_of(members, MEMBERS_PER_PAGE)
        shown = db.session.execute(
            select(Organisation.id, Organisation.name)
            .where(Organisation.id.in_(select(Award.organisation_id).where(Award.run_id == run.id)))
            .order_by(Organisation.name).offset(pagination.offset).limit(MEMBERS_PER_PAGE)
        ).all()
        awards: dict[int, list[Award]] = {}
        for award in db.session.scalars(select(Award).where(
                Award.run_id == run.id, Award.organisation_id.in_([key for key, _ in shown]))
                .order_by(Award.category)):
            awards.setdefault(award.organisation_id, []).append(award)
        rows = [(name, awards.get(key, [])) for key, name in shown]
        plan = runs.planned_free_stock(run)
        if plan:
            names = organisation_names(each.organisation_id for each in plan)
            products = dict(db.session.execute(select(Product.id, Product.name).where(
                Product.id.in_({each.product_id for each in plan}))).all())
            planned = [(names.get(each.organisation_id, ""), products.get(each.product_id, ""), each.units,
                        each.unit_value) for each in plan]
    overrides = runs.current_overrides(run.id) if run is not None else []
    override_names = organisation_names(each.organisation_id for each in overrides)
    return render_template(
        "subsidies/runs/round.html", round=found, runs=all_runs, run=run, rows=rows, pagination=pagination,
        override_form=_override_form(run, form) if run is not None and run.status == RunStatus.PREVIEW
        else None,
        start_form=StartRunForm(), decide_form=DecideForm(), can_start=found.status in runs.ALLOCATABLE
        and not any(each.status == RunStatus.APPROVED for each in all_runs),
        overrides=overrides, override_names=override_names, planned=planned, error=error,
        limit_label=limit_label, from_cents=from_cents,
    ), status


@bp.get("/rounds/<int:round_id>/subsidies")
def round_runs(round_id: int):
    _require_admin()
    return _render_round(round_id)


@bp.post("/rounds/<int:round_id>/subsidies/runs")
def start(round_id: int):
    _require_admin()
    form = StartRunForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        run = runs.start_run(current_actor(), round_id)
    except DomainError as error:
        if error.status in (403, 404):
            raise
        flash(error.message, "error")
        return redirect(url_for(".round_runs", round_id=round_id))
    flash(f"Preview run #{run.id}: {format_money(run.total_awarded)} awarded. Check it, then approve it.",
          "info")
    return redirect(url_for(".round_runs", round_id=round_id, run=run.id))


def _run_or_404(run_id: int) -> SubsidyRun:
    return runs.get_run(current_actor(), run_id)


@bp.post("/subsidies/runs/<int:run_id>/overrides")
def override(run_id: int):
    _require_admin()
    run = _run_or_404(run_id)
    form = _override_form(run)
    if not form.validate_on_submit():
        return _render_round_for(run, form=form, error="Check the override: every field but the category "
                                 "is required.", status=400)
    try:
        runs.override_award(current_actor(), run_id, organisation_id=form.organisation_id.data,
                            amount=form.amount.data, reason=form.reason.data, category=form.category.data)
    except DomainError as error:
        if error.status in (403, 404):
            raise
        show_on_form(form, error)  # and above the run, where the page opens
        return _render_round_for(run, form=form, error=error.message, status=error.status)
    flash("Award overridden; the other awards were re-balanced.", "info")
    return redirect(url_for(".round_runs", round_id=run.round_id, run=run_id))


def _render_round_for(run: SubsidyRun, **kwargs: Any):
    return _render_round(run.round_id, run_id=run.id, **kwargs)


@bp.get("/subsidies/runs/<int:run_id>/approve")
def confirm_approve(run_id: int):
    _require_admin()
    run = _run_or_404(run_id)
    if run.status != RunStatus.PREVIEW:
        flash(f"Run #{run.id} is {run.status.value}: only a preview can be approved.", "error")
        return redirect(url_for(".round_runs", round_id=run.round_id, run=run.id))
    found = rounds.get_round(current_actor(), run.round_id)
    members = db.session.scalar(select(func.count(func.distinct(Award.organisation_id)))
                                .where(Award.run_id == run.id, Award.amount > 0)) or 0
    free_units = sum(each.units for each in runs.planned_free_stock(run))
    return render_template("subsidies/runs/approve.html", run=run, round=found, members=members,
                           free_units=free_units, form=DecideForm(),
                           overrides=len(runs.current_overrides(run.id)))


@bp.post("/subsidies/runs/<int:run_id>/approve")
def approve(run_id: int):
    _require_admin()
    run = _run_or_404(run_id)
    if not DecideForm().validate_on_submit():
        abort(400)
    try:
        approval = runs.approve_run(current_actor(), run_id)
    except DomainError as error:
        if error.status in (403, 404):
            raise
        flash(error.message, "error")
        return redirect(url_for(".round_runs", round_id=run.round_id, run=run_id)), 303
    flash(f"Run #{run_id} approved: {format_money(approval.run.total_awarded)} awarded"
          f"{', ' + str(approval.free_units) + ' free units given' if approval.free_units else ''}"
          f"{', journal entry #' + str(approval.journal_entry_id) if approval.journal_entry_id else ''}.",
          "info")
    return redirect(url_for(".round_runs", round_id=run.round_id, run=run_id))


@bp.post("/subsidies/runs/<int:run_id>/discard")
def discard(run_id: int):
    _require_admin()
    run = _run_or_404(run_id)
    if not DecideForm().validate_on_submit():
        abort(400)
    try:
        runs.discard_run(current_actor(), run_id)
    except DomainError as error:
        if error.status in (403, 404):
            raise
        flash(error.message, "error")
        return redirect(url_for(".round_runs", round_id=run.round_id, run=run_id)), 303
    flash(f"Run #{run_id} discarded.", "info")
    return redirect(url_for(".round_runs", round_id=run.round_id))


# --- Everyone: the awards report; members: their awards --------------------------------------


@bp.get("/rounds/<int:round_id>/subsidies/report")
def report(round_id: int):
    found = runs.awards_report(current_actor(), round_id)
    return render_template("subsidies/runs/report.html", report=found, round=found.round,
                           limit_label=limit_label, band_labels=BAND_LABELS)


@bp.get("/subsidies/my-awards")
def my_awards():
    actor = current_actor()
    if actor.organisation_id is None:
        return render_template("subsidies/runs/my_awards.html", rounds=None)
    return render_template("subsidies/runs/my_awards.html", rounds=runs.awards_for_member(actor))
