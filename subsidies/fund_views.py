"""Pages for the subsidy fund and the allocation policy.

``/fund`` (admin, finance): money available by restriction, the grants
received, and the form to record one (finance only). ``/fund/grants/<id>``:
one grant and, for finance, reversing it. ``/fund/policy`` (admin): the
policy in force in plain words, the form to save a new version, the older
versions, and each low-resource member's need weight under the current one.

Views parse the form, call one service, then flash and redirect or re-render
with the error next to its field.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import login_required
from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    HiddenField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import Optional

from buyersclub.accounts.models import Role, User
from buyersclub.accounts.views import current_actor
from buyersclub.db import db, utcnow
from buyersclub.errors import Conflict, DomainError, InvalidInput, NotFound
from buyersclub.ledger.services import reversal_of
from buyersclub.money import ZERO, format_money
from buyersclub.organisations.models import BudgetBand, PeopleReachedBand
from buyersclub.web.forms import show_on_form
from subsidies import fund
from subsidies.fund import CATEGORIES
from subsidies.models import SubsidyPolicy
from subsidies.policy import BUDGET_LABELS as BUDGET_NAMES
from subsidies.policy import PEOPLE_LABELS as PEOPLE_NAMES
from subsidies.services import grants as grant_services
from subsidies.services import policies

bp = Blueprint("subsidies_fund", __name__, template_folder="templates")

PER_PAGE = 25
READERS = (Role.ADMIN, Role.FINANCE)
DECILES = [str(decile) for decile in range(1, 11)]
RESTRICTION_CHOICES = [SelectChoice("", "Unrestricted: any category")] + [
    SelectChoice(category, f"Restricted to {category}") for category in CATEGORIES
]


# --- Forms --------------------------------------------------------------------------


class GrantForm(FlaskForm):
    source = StringField(
        "Who the money came from",
        description="The funder or donor, as on the award letter or receipt, e.g. 'State opioid "
        "settlement fund' or 'Anonymous donation'.",
    )
    amount = StringField(
        "Amount received",
        description="Money as written on the statement, at most two decimals, e.g. 2500.00.",
        render_kw={"inputmode": "decimal"},
    )
    received_on = DateField(
        "Date received", validators=[Optional()],
        description="The day the money reached the bank; not in the future.",
    )
    restricted_to = SelectField(
        "Restriction", choices=RESTRICTION_CHOICES, default="",
        description="If the funder said what the money may buy, choose that category: money "
        "restricted to naloxone only ever pays for naloxone. Otherwise leave it unrestricted.",
    )
    note = TextAreaField(
        "Note", description="Optional: a grant reference, reporting deadline or conditions.",
    )


class ReverseGrantForm(FlaskForm):
    reason = TextAreaField(
        "Why is this grant being reversed?",
        description="For example: 'Recorded twice' or 'Wrong amount; recorded again correctly'. "
        "Kept with the reversal entry and in the audit log.",
    )


class PolicyForm(FlaskForm):
    """One field per number of the policy; built below from the bands and categories."""

    based_on = HiddenField()
    base = StringField(
        "Base points", render_kw={"inputmode": "decimal"},
        description="Every eligible member starts with these points; must be more than zero.",
    )
    no_public_funding = StringField(
        "Points for having no public funding", render_kw={"inputmode": "decimal"},
        description="Added when the organisation receives no public (government) funding.",
    )
    floor_amount = StringField(
        "Floor (minimum award)", render_kw={"inputmode": "decimal"},
        description="Money every eligible member gets at least, when the fund allows; 0.00 for no "
        "floor.",
    )
    member_cap = StringField(
        "Cap per member", render_kw={"inputmode": "decimal"},
        description="The most one member may receive in a run; leave empty for no cap beyond the "
        "shares.",
    )
    note = TextAreaField(
        "Why this version",
        description="Shown in the history next to this version, e.g. 'Oxygen share lowered after "
        "the board meeting of 3 March'.",
    )


def _decimal_field(label: str, description: str) -> StringField:
    return StringField(label, description=description, render_kw={"inputmode": "decimal"})


for _band in BudgetBand:
    setattr(PolicyForm, f"budget_{_band.value}", _decimal_field(
        f"Points for an {BUDGET_NAMES[_band.value]}",
        "Smaller budgets usually score more; zero or more."))
for _band in PeopleReachedBand:
    setattr(PolicyForm, f"people_{_band.value}", _decimal_field(
        f"Points for {PEOPLE_NAMES[_band.value]}",
        "More people reached usually scores more; zero or more."))
for _decile in DECILES:
    setattr(PolicyForm, f"decile_{_decile}", _decimal_field(
        f"Points for deprivation decile {_decile}",
        "Decile 1 is the most deprived area; zero or empty scores nothing."))
for _category in CATEGORIES:
    setattr(PolicyForm, f"share_{_category}", _decimal_field(
        f"Largest share of a {_category} bill",
        f"Between 0 and 1: 1 pays up to 100% of a member's {_category} bill, 0.75 up to 75%, "
        "0 nothing."))
ORDINALS = ("First", "Second", "Third", "Fourth", "Fifth", "Sixth")
for _position in range(1, len(CATEGORIES) + 1):
    setattr(PolicyForm, f"priority_{_position}", SelectField(
        f"{ORDINALS[_position - 1]} funded",
        choices=[SelectChoice(category, category) for category in CATEGORIES],
        description="Categories earlier in the order are funded first when money is short."))


def _policy_field_names() -> dict[str, str]:
    """Service field path -> form field name, to show an error next to its field."""
    names = {
        "weights.base": "base",
        "weights.no_public_funding": "no_public_funding",
        "floor_amount": "floor_amount",
        "member_cap": "member_cap",
        "note": "note",
        "priority": "priority_1",
        "based_on": "",  # a newer version exists: said at the top of the form
    }
    names.update({f"weights.budget_band.{band.value}": f"budget_{band.value}" for band in BudgetBand})
    names.update({f"weights.people_reached_band.{band.value}": f"people_{band.value}"
                  for band in PeopleReachedBand})
    names.update({f"weights.deprivation_decile.{decile}": f"decile_{decile}" for decile in DECILES})
    names.update({f"max_share.{category}": f"share_{category}" for category in CATEGORIES})
    return names


POLICY_FIELDS = _policy_field_names()


def _fill_policy_form(form: PolicyForm, policy: SubsidyPolicy) -> None:
    weights = policy.weights
    form.based_on.data = str(policy.version)
    form.base.data = str(weights.get("base", "1"))
    form.no_public_funding.data = str(weights.get("no_public_funding", "0"))
    for band in BudgetBand:
        form[f"budget_{band.value}"].data = str(weights.get("budget_band", {}).get(band.value, "0"))
    for band in PeopleReachedBand:
        form[f"people_{band.value}"].data = str(
            weights.get("people_reached_band", {}).get(band.value, "0"))
    for decile in DECILES:
        form[f"decile_{decile}"].data = str(weights.get("deprivation_decile", {}).get(decile, "0"))
    for category in CATEGORIES:
        form[f"share_{category}"].data = str(policy.max_share.get(category, "0"))
    for position, category in enumerate(policy.priority, start=1):
        form[f"priority_{position}"].data = category
    form.floor_amount.data = f"{policy.floor_amount:.2f}"
    form.member_cap.data = f"{policy.member_cap:.2f}" if policy.member_cap is not None else ""
    form.note.data = ""


def _policy_values(form: PolicyForm) -> dict[str, Any]:
    """The form as the service's arguments (strings; the service validates them)."""
    deciles = {decile: form[f"decile_{decile}"].data.strip() for decile in DECILES
               if (form[f"decile_{decile}"].data or "").strip()}
    based_on = (form.based_on.data or "").strip()
    return {
        "weights": {
            "base": form.base.data or "",
            "budget_band": {band.value: form[f"budget_{band.value}"].data or ""
                            for band in BudgetBand},
            "people_reached_band": {band.value: form[f"people_{band.value}"].data or ""
                                    for band in PeopleReachedBand},
            "no_public_funding": form.no_public_funding.data or "",
            "deprivation_decile": deciles,
        },
        "max_share": {category: form[f"share_{category}"].data or "" for category in CATEGORIES},
        "priority": [form[f"priority_{position}"].data
                     for position in range(1, len(CATEGORIES) + 1)],
        "floor_amount": form.floor_amount.data,
        "member_cap": form.member_cap.data,
        "note": form.note.data,
        "based_on": int(based_on) if based_on.isdigit() else None,
    }


@bp.app_template_filter("share_percent")
def share_percent(share: Any) -> str:
    """A share written as a decimal string ("0.75") as a percentage ("75%"), exactly."""
    try:
        percent = Decimal(str(share)) * 100
    except InvalidOperation:
        return str(share)
    return f"{format(percent.normalize(), 'f')}%"


# --- The fund ------------------------------------------------------------------------


@bp.before_request
@login_required
def _signed_in():
    return None


def _fund_page(form: GrantForm | None, status: int = 200):
    actor = current_actor()
    actor.require(*READERS)
    restriction = request.args.get("restricted_to", "").strip()
    try:
        statement = grant_services.grants_statement(restriction)
        restriction_error = None
    except InvalidInput as error:
        statement = grant_services.grants_statement(None)
        restriction, restriction_error = "", error.message
    pagination = db.paginate(statement, per_page=PER_PAGE, max_per_page=PER_PAGE, error_out=False)
    balances = grant_services.fund_balances()
    can_record = actor.has_role(Role.FINANCE) and not actor.is_system
    if form is None and can_record:
        form = GrantForm(received_on=utcnow().date())
    return render_template(
        "subsidies/fund/index.html",
        balances=balances,
        total=sum((row.available for row in balances), ZERO),
        pagination=pagination,
        reversed_by=grant_services.reversals_for(list(pagination.items)),
        restriction=restriction,
        restriction_error=restriction_error,
        categories=CATEGORIES,
        form=form if can_record else None,
    ), status


@bp.get("/fund")
def index():
    return _fund_page(None)


@bp.post("/fund/grants")
def record_grant():
    actor = current_actor()
    actor.require(Role.FINANCE)
    form = GrantForm()
    if not form.validate_on_submit():
        if form.received_on.errors:
            form.received_on.errors = ["Write the date received as YYYY-MM-DD."]
        return _fund_page(form, 400)
    try:
        grant = grant_services.record_grant(
            actor, form.source.data, form.amount.data, form.received_on.data,
            restricted_to=form.restricted_to.data or None, note=form.note.data,
        )
    except DomainError as error:
        if error.status in (403, 404):
            raise
        show_on_form(form, error)
        return _fund_page(form, error.status)
    currency = current_app.config["CLUB_CURRENCY"]
    flash(f"Recorded {format_money(grant.amount, currency)} from {grant.source} "
          f"({grant_services.describe(grant.restricted_to)}).", "info")
    return redirect(url_for(".index"))


def _grant_page(grant_id: int, form: ReverseGrantForm | None = None, status: int = 200):
    actor = current_actor()
    grant = grant_services.get_grant(actor, grant_id)
    reversal = reversal_of(grant.journal_entry_id)
    can_reverse = actor.has_role(Role.FINANCE) and not actor.is_system and reversal is None
    recorded_by = db.session.get(User, grant.recorded_by_id) if grant.recorded_by_id else None
    return render_template(
        "subsidies/fund/grant.html", grant=grant, reversal=reversal, recorded_by=recorded_by,
        form=(form or ReverseGrantForm()) if can_reverse else None,
        available=fund.available(grant.restricted_to),
    ), status


@bp.get("/fund/grants/<int:grant_id>")
def grant(grant_id: int):
    return _grant_page(grant_id)


@bp.post("/fund/grants/<int:grant_id>/reverse")
def reverse_grant(grant_id: int):
    actor = current_actor()
    actor.require(Role.FINANCE)
    form = ReverseGrantForm()
    if not form.validate_on_submit():
        return _grant_page(grant_id, form, 400)
    try:
        reversal = grant_services.reverse_grant(actor, grant_id, form.reason.data,
                                                currency=current_app.config["CLUB_CURRENCY"])
    except DomainError as error:
        if isinstance(error, NotFound) or error.status == 403:
            raise
        show_on_form(form, error)
        return _grant_page(grant_id, form, error.status)
    flash(f"Grant #{grant_id} is reversed by journal entry #{reversal.id}.", "info")
    return redirect(url_for(".grant", grant_id=grant_id))


# --- The policy ------------------------------------------------------------------------


def _policy_page(form: PolicyForm | None = None, status: int = 200):
    current_actor().require(Role.ADMIN)
    current = policies.current_policy()
    if form is None:
        form = PolicyForm()
        _fill_policy_form(form, current)
    return render_template(
        "subsidies/fund/policy.html",
        policy=current,
        history=[each for each in policies.policy_history() if each.version != current.version],
        weighed=policies.low_resource_weights(current),
        form=form,
        **_policy_labels(),
    ), status


def _policy_labels() -> dict[str, Any]:
    return {
        "budget_bands": [(band.value, BUDGET_NAMES[band.value]) for band in BudgetBand],
        "people_bands": [(band.value, PEOPLE_NAMES[band.value]) for band in PeopleReachedBand],
        "deciles": DECILES,
        "categories": CATEGORIES,
    }


@bp.get("/fund/policy")
def policy():
    return _policy_page()


@bp.post("/fund/policy")
def save_policy():
    actor = current_actor()
    actor.require(Role.ADMIN)
    form = PolicyForm()
    if not form.validate_on_submit():
        return _policy_page(form, 400)
    try:
        saved = policies.new_policy_version(actor, **_policy_values(form))
    except DomainError as error:
        if error.status in (403, 404):
            raise
        show_on_form(form, error, POLICY_FIELDS)
        if isinstance(error, Conflict):
            # The page now shows the newer version; saving again is a deliberate choice.
            form.based_on.data = str(policies.current_policy().version)
        return _policy_page(form, error.status)
    flash(f"Policy version {saved.version} is saved and now in force for new subsidy runs.", "info")
    return redirect(url_for(".policy"))


@bp.get("/fund/policy/<int:version>")
def policy_version(version: int):
    current_actor().require(Role.ADMIN)
    shown = policies.get_version(version)
    return render_template(
        "subsidies/fund/policy_version.html", policy=shown,
        current_version=policies.current_policy().version, **_policy_labels(),
    )
