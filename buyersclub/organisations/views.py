"""Organisation pages: applying, the list for admins, the profile with documents
and staff, the membership decision and the need assessment.

Views parse the form, call one service, then flash and redirect. Scoping is
the services' job (``get_organisation`` raises NotFound for another
organisation's record), so every page addressing an organisation goes through
them first.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user

from buyersclub.accounts import services as accounts
from buyersclub.accounts.models import Role, User
from buyersclub.accounts.views import current_actor
from buyersclub.actor import Actor
from buyersclub.db import db
from buyersclub.errors import DomainError
from buyersclub.organisations import services
from buyersclub.organisations.forms import (
    STATUS_FILTER_CHOICES,
    ActionForm,
    ApplyWithAccountForm,
    AssessmentForm,
    DocumentForm,
    InviteForm,
    ProfileForm,
    RejectForm,
)
from buyersclub.organisations.models import (
    BUDGET_LABELS,
    DOCUMENT_LABELS,
    KIND_LABELS,
    PEOPLE_LABELS,
    MembershipStatus,
)
from buyersclub.web.forms import show_on_form

bp = Blueprint("organisations", __name__, template_folder="templates")

PER_PAGE = 25

def _labels() -> dict:
    return {"kind_labels": KIND_LABELS, "budget_labels": BUDGET_LABELS,
            "people_labels": PEOPLE_LABELS, "document_labels": DOCUMENT_LABELS}


# --- The list ----------------------------------------------------------------


@bp.get("/organisations")
@login_required
def index():
    """Admin and finance see every organisation; member staff see only their own."""
    actor = current_actor()
    status = request.args.get("status", "").strip()
    if status not in {choice for choice, _ in STATUS_FILTER_CHOICES}:
        status = ""
    q = request.args.get("q", "").strip()[:160]
    statement = services.organisations_for(actor, status=status or None, q=q or None)
    page = db.paginate(statement, per_page=PER_PAGE, max_per_page=PER_PAGE, error_out=False)
    return render_template("organisations/index.html", page=page, status=status, q=q,
                           status_choices=STATUS_FILTER_CHOICES, **_labels())


# --- Applying ----------------------------------------------------------------


@bp.route("/apply", methods=["GET", "POST"])
def apply():
    """Apply to join. A visitor also creates an account here; an admin creates a member."""
    signed_in = current_user.is_authenticated
    admin_creates = signed_in and current_user.is_admin
    if signed_in and not admin_creates and current_user.organisation_id is not None:
        flash("Your account already belongs to an organisation.", "info")
        return redirect(url_for(".detail", organisation_id=current_user.organisation_id))
    form = ProfileForm() if signed_in else ApplyWithAccountForm()
    if form.validate_on_submit():
        try:
            if admin_creates:
                organisation = services.create_organisation(current_actor(), **form.profile())
            else:
                user = current_user._get_current_object() if signed_in else _new_applicant(form)
                organisation = services.apply_to_join(
                    Actor.for_user(user, address=request.remote_addr), **form.profile()
                )
        except DomainError as error:
            show_on_form(form, error)
            return render_template("organisations/apply.html", form=form,
                                   admin_creates=admin_creates), error.status
        if admin_creates:
            flash(f"{organisation.name} is created and approved.", "info")
        else:
            if not signed_in:
                login_user(user)
            flash("Thank you: your application is in. A club administrator will review it "
                  "and you will hear by e-mail.", "info")
        return redirect(url_for(".detail", organisation_id=organisation.id))
    status = 400 if form.is_submitted() else 200
    return render_template("organisations/apply.html", form=form,
                           admin_creates=admin_creates), status


def _new_applicant(form: ApplyWithAccountForm) -> User:
    """The visitor's own account, created with the application (same transaction)."""
    try:
        return accounts.create_user(
            Actor.system("apply"), email=form.email.data, name=form.your_name.data,
            password=form.password.data,
        )
    except DomainError as error:
        # The account's "name" is the person's own name on this form.
        if error.field == "name":
            error.field = "your_name"
        raise


# --- One organisation --------------------------------------------------------


def _detail_page(organisation_id: int, *, invite_form: InviteForm | None = None, status: int = 200):
    actor = current_actor()
    organisation = services.get_organisation(actor, organisation_id)
    staff = db.session.scalars(services.list_staff(actor, organisation_id)).all()
    documents = services.document_rows(
        db.session.scalars(services.list_documents(actor, organisation_id)).all()
    )
    decided_by = db.session.get(User, organisation.decided_by_id) if organisation.decided_by_id else None
    assessed_by = (db.session.get(User, organisation.assessed_by_id)
                   if organisation.assessed_by_id else None)
    can_edit = actor.has_role(Role.ADMIN) or actor.organisation_id == organisation.id
    return render_template(
        "organisations/detail.html",
        organisation=organisation,
        staff=staff,
        documents=documents,
        decided_by=decided_by,
        assessed_by=assessed_by,
        can_edit=can_edit,
        is_admin=actor.has_role(Role.ADMIN),
        invite_form=invite_form or InviteForm(formdata=None),
        action_form=ActionForm(formdata=None),
        staff_status=services.staff_status,
        MembershipStatus=MembershipStatus,
        **_labels(),
    ), status


@bp.get("/organisations/<int:organisation_id>")
@login_required
def detail(organisation_id: int):
    return _detail_page(organisation_id)


@bp.route("/organisations/<int:organisation_id>/edit", methods=["GET", "POST"])
@login_required
def edit(organisation_id: int):
    actor = current_actor()
    organisation = services.get_organisation(actor, organisation_id)
    services.require_editor(actor, organisation)
    form = ProfileForm.for_organisation(organisation)
    if form.validate_on_submit():
        try:
            services.update_profile(actor, organisation_id, form.profile())
        except DomainError as error:
            show_on_form(form, error)
            return render_template("organisations/edit.html", form=form,
                                   organisation=organisation), error.status
        flash("The profile is saved.", "info")
        return redirect(url_for(".detail", organisation_id=organisation_id))
    status = 400 if form.is_submitted() else 200
    return render_template("organisations/edit.html", form=form, organisation=organisation), status


@bp.post("/organisations/<int:organisation_id>/approve")
@login_required
def approve(organisation_id: int):
    # The CSRF token of the button's form is checked by CSRFProtect for every POST.
    organisation = services.approve(current_actor(), organisation_id)
    flash(f"{organisation.name} is approved; its staff are told by e-mail.", "info")
    return redirect(url_for(".detail", organisation_id=organisation_id))


@bp.route("/organisations/<int:organisation_id>/reject", methods=["GET", "POST"])
@login_required
def reject(organisation_id: int):
    """A confirmation page: the reason, and a tick to confirm, before anything changes."""
    actor = current_actor()
    organisation = services.get_organisation(actor, organisation_id)
    actor.require(Role.ADMIN)
    form = RejectForm()
    if form.validate_on_submit():
        try:
            services.reject(actor, organisation_id, form.reason.data)
        except DomainError as error:
            show_on_form(form, error)
            return render_template("organisations/reject.html", form=form,
                                   organisation=organisation), error.status
        flash(f"{organisation.name}'s application is rejected; its staff are told why by e-mail.",
              "info")
        return redirect(url_for(".detail", organisation_id=organisation_id))
    status = 400 if form.is_submitted() else 200
    return render_template("organisations/reject.html", form=form, organisation=organisation), status


@bp.route("/organisations/<int:organisation_id>/assessment", methods=["GET", "POST"])
@login_required
def assessment(organisation_id: int):
    actor = current_actor()
    organisation = services.get_organisation(actor, organisation_id)
    actor.require(Role.ADMIN)
    form = AssessmentForm()
    if not form.is_submitted():
        form.low_resource.data = organisation.low_resource
        form.reason.data = organisation.assessment_reason or ""
        form.deprivation_decile.data = (str(organisation.deprivation_decile)
                                        if organisation.deprivation_decile else "")
    if form.validate_on_submit():
        try:
            services.assess_need(actor, organisation_id, low_resource=form.low_resource.data,
                                 reason=form.reason.data, deprivation_decile=form.decile())
        except DomainError as error:
            show_on_form(form, error)
            return render_template("organisations/assessment.html", form=form,
                                   organisation=organisation), error.status
        flash("The need assessment is saved.", "info")
        return redirect(url_for(".detail", organisation_id=organisation_id))
    status = 400 if form.is_submitted() else 200
    return render_template("organisations/assessment.html", form=form,
                           organisation=organisation), status


@bp.route("/organisations/<int:organisation_id>/documents/new", methods=["GET", "POST"])
@login_required
def add_document(organisation_id: int):
    actor = current_actor()
    organisation = services.get_organisation(actor, organisation_id)
    services.require_editor(actor, organisation)
    form = DocumentForm()
    if form.validate_on_submit():
        try:
            document = services.add_document(actor, organisation_id, kind=form.kind.data,
                                             reference=form.reference.data,
                                             expires_on=form.expires_on.data)
        except DomainError as error:
            show_on_form(form, error)
            return render_template("organisations/add_document.html", form=form,
                                   organisation=organisation), error.status
        flash(f"{DOCUMENT_LABELS[document.kind]} {document.reference} is on file.", "info")
        return redirect(url_for(".detail", organisation_id=organisation_id, _anchor="documents"))
    status = 400 if form.is_submitted() else 200
    return render_template("organisations/add_document.html", form=form,
                           organisation=organisation), status


@bp.post("/organisations/<int:organisation_id>/staff")
@login_required
def invite(organisation_id: int):
    actor = current_actor()
    organisation = services.get_organisation(actor, organisation_id)
    services.require_editor(actor, organisation)
    form = InviteForm()
    if form.validate_on_submit():
        try:
            user = services.invite_colleague(
                actor, organisation_id, email=form.email.data, name=form.name.data,
                invite_url=lambda token: url_for("accounts.accept_invitation", token=token,
                                                 _external=True),
            )
        except DomainError as error:
            show_on_form(form, error)
            return _detail_page(organisation_id, invite_form=form, status=error.status)
        flash(f"An invitation is on its way to {user.email}.", "info")
        return redirect(url_for(".detail", organisation_id=organisation_id, _anchor="staff"))
    return _detail_page(organisation_id, invite_form=form, status=400)
