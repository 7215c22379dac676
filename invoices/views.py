"""Invoice pages.

Finance (and administrators, read-only): the invoice list filtered by status,
round, member and overdue; one invoice with its lines, payments, credit notes
and balance due; forms to record a payment, issue a credit note (reason
required, then a confirmation) and void (reason and an explicit
confirmation); a round's invoices with the "Issue invoices" button.

Member staff: "My invoices" and each of their own (another organisation's is 404).

Paying by card: member staff and finance see "Pay by card" when Stripe is
configured and something is due; it sends them to a Stripe Checkout page
(``invoices.services.checkout``). Coming back from it only thanks them: the
payment shows once Stripe's webhook confirms it. Without Stripe the page
shows the club's bank details to pay by transfer, quoting the invoice number.
"""

from __future__ import annotations

from decimal import Decimal

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, DateField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from buyersclub.accounts.models import Role
from buyersclub.accounts.views import current_actor
from buyersclub.actor import Actor
from buyersclub.db import db, sql_cents_sum, utcnow
from buyersclub.errors import DomainError, InvalidInput, NotFound
from buyersclub.money import ZERO, from_cents
from buyersclub.organisations.models import Organisation
from buyersclub.organisations.services import organisation_names
from buyersclub.web.forms import attempt
from invoices import pdf as invoices_pdf
from invoices import stripe_gateway
from invoices.models import Invoice, InvoiceStatus, LineKind, Payment, PaymentMethod
from invoices.services import checkout, credit_notes, issuing, payments, queries, reminders
from orders import pdf
from orders.models import Round
from orders.services.rounds import get_round

bp = Blueprint("invoices", __name__, template_folder="templates")

PER_PAGE = 25
STAFF = (Role.FINANCE, Role.ADMIN)


# --- Forms ---------------------------------------------------------------------------------------


class PaymentForm(FlaskForm):
    method = SelectField("How it was paid", choices=[
        SelectChoice(PaymentMethod.BANK_TRANSFER.value, "Bank transfer"),
        SelectChoice(PaymentMethod.CHEQUE.value, "Cheque"), SelectChoice(PaymentMethod.OTHER.value, "Other")])
    reference = StringField("Reference", validators=[Optional(), Length(max=120)],
                            description="The bank reference or cheque number.")
    received_on = DateField("Received on", validators=[InputRequired(message="Give the day the money "
                                                                             "arrived.")])
    amount = StringField("Amount", validators=[DataRequired(message="Give the amount received.")],
                         description="More than the balance due becomes the member's account credit.")


class CreditNoteForm(FlaskForm):
    reason = TextAreaField("Reason", validators=[DataRequired(message="Give the reason: it is printed on "
                                                                      "the credit note."), Length(max=500)])
    amount = StringField("Amount", validators=[Optional()],
                         description="Leave empty and tick no line to credit the whole open amount.")
    line_ids = SelectMultipleField("Or credit these lines in full", coerce=int, validators=[Optional()])


class VoidForm(FlaskForm):
    reason = TextAreaField("Why was it issued in error?", validators=[DataRequired(message="Give the "
                                                                      "reason."), Length(max=500)])
    confirm = BooleanField("Yes, void this invoice. It keeps its number; the round's invoices can be "
                           "issued again to replace it.", validators=[DataRequired(message="Tick the box "
                                                                                           "to confirm.")])


class RefundForm(FlaskForm):
    amount = StringField("Amount to pay back",
                         validators=[DataRequired(message="Give the amount to refund.")])
    reason = TextAreaField("Reason", validators=[DataRequired(message="Give the reason: it is kept with the "
                                                                      "refund."), Length(max=500)])
    confirm = BooleanField("Yes, pay this money back to the member.",
                           validators=[DataRequired(message="Tick the box to confirm.")])


class PayForm(FlaskForm):
    """Only the CSRF token: the amount is the balance due when the button is pressed."""


class IssueForm(FlaskForm):
    without_subsidy_run = BooleanField("Issue without an approved subsidy run (no subsidy credits)")


class NoticeForm(FlaskForm):
    """Only the CSRF token: e-mail the round's members their new invoices."""


# --- Lists ---------------------------------------------------------------------------------------


def _int_arg(name: str) -> int | None:
    raw = request.args.get(name, "").strip()
    return int(raw) if raw.isdigit() else None


@bp.get("/invoices")
@login_required
def index():
    """Finance and administrators: every invoice, filtered; member staff: their own."""
    actor = current_actor()
    staff = actor.has_role(*STAFF)
    filters = {"status": request.args.get("status", "").strip(), "round_id": _int_arg("round_id"),
               "organisation_id": _int_arg("organisation_id") if staff else None,
               "overdue": request.args.get("overdue") == "1"}
    error = None
    scope = {"round_id": filters["round_id"], "organisation_id": filters["organisation_id"],
             "overdue": filters["overdue"]}
    try:
        statement = queries.invoices_for(actor, status=filters["status"] or None, **scope)
    except InvalidInput as exc:
        error = exc.message
        filters["status"] = ""
        statement = queries.invoices_for(actor, **scope)
    pagination = db.paginate(statement, per_page=PER_PAGE, max_per_page=PER_PAGE, error_out=False)
    found = payments.settlements(pagination.items)
    names = organisation_names({invoice.organisation_id for invoice in pagination.items})
    members = rounds = []
    if staff:
        members = db.session.execute(select(Organisation.id, Organisation.name)
                                     .where(Organisation.id.in_(select(Invoice.organisation_id)))
                                     .order_by(Organisation.name)).all()
        rounds = db.session.execute(select(Round.id, Round.name).where(Round.id.in_(select(Invoice.round_id)))
                                    .order_by(Round.id.desc())).all()
    return render_template("invoices/list.html", pagination=pagination, settlements=found, names=names,
                           filters=filters, statuses=queries.STATUSES, members=members, rounds=rounds,
                           staff=staff, label=payments.status_label, error=error), 400 if error else 200


# --- One invoice ---------------------------------------------------------------------------------


def _detail(invoice_id: int, *, payment_form: PaymentForm | None = None, status: int = 200):
    actor = current_actor()
    invoice = issuing.get_invoice(actor, invoice_id)
    found = payments.settlement(invoice)
    balance_due = ZERO if invoice.status == InvoiceStatus.VOID else found.balance_due
    round_ = db.session.get(Round, invoice.round_id)
    return render_template(
        "invoices/detail.html", invoice=invoice, settlement=found, round=round_,
        status_label=payments.status_label(invoice, found), balance_due=balance_due,
        payments=payments.payments_for(invoice), notes=credit_notes.credit_notes_for(invoice),
        can_act=actor.has_role(Role.FINANCE) and invoice.status == InvoiceStatus.ISSUED,
        can_refund=actor.has_role(Role.FINANCE),
        void=invoice.status == InvoiceStatus.VOID, LineKind=LineKind,
        paying=_paying(actor, invoice, balance_due),
    ), status


def _paying(actor: Actor, invoice: Invoice, balance_due: Decimal) -> dict:
    """How this reader may pay the invoice, and what finance should know about card attempts."""
    due = invoice.status == InvoiceStatus.ISSUED and balance_due > 0
    payer = checkout.may_pay(actor, invoice)
    returned = request.args.get("checkout")
    return {
        "owed": due and payer,
        "card": due and payer and stripe_gateway.enabled(),
        "bank_details": current_app.config.get("CLUB_BANK_DETAILS"),
        "returned": returned if returned in CHECKOUT_RETURNS else None,
        "problems": [attempt for attempt in checkout.attempts_for(invoice) if attempt.problem]
        if actor.has_role(Role.FINANCE) else [],
        "failed_refunds": payments.failed_refunds(invoice) if actor.has_role(Role.FINANCE) else [],
        "form": PayForm(),
    }


CHECKOUT_RETURNS = ("success", "cancelled")


@bp.get("/invoices/<int:invoice_id>")
@login_required
def detail(invoice_id: int):
    return _detail(invoice_id)


@bp.get("/invoices/<int:invoice_id>/pdf")
@login_required
def invoice_pdf(invoice_id: int):
    """The invoice as a PDF: the batch's stored file, or rendered now (member staff: their own)."""
    invoice = issuing.get_invoice(current_actor(), invoice_id)
    return pdf.pdf_response(invoices_pdf.invoice_pdf(invoice), invoices_pdf.filename(invoice))


@bp.post("/invoices/<int:invoice_id>/pay")
@login_required
def pay(invoice_id: int):
    """To Stripe Checkout for the balance due (303); a second click reuses the open session."""
    actor = current_actor()
    invoice = issuing.get_invoice(actor, invoice_id)
    form = PayForm()
    if not form.validate_on_submit():
        flash("The form expired. Please press \"Pay by card\" again.", "error")
        return redirect(url_for(".detail", invoice_id=invoice.id))
    try:
        started = checkout.start_checkout(actor, invoice.id)
    except DomainError as error:
        if isinstance(error, NotFound):
            raise
        flash(error.message, "error")
        return _detail(invoice.id, status=error.status)
    return redirect(started.url, code=303)


@bp.route("/invoices/<int:invoice_id>/payments/new", methods=["GET", "POST"])
@login_required
def record_payment(invoice_id: int):
    actor = current_actor()
    actor.require(Role.FINANCE)
    invoice = issuing.get_invoice(actor, invoice_id)
    form = PaymentForm()
    if request.method == "GET":
        form.received_on.data = utcnow().date()
        form.amount.data = f"{payments.balance_due(invoice):.2f}"
    status = 200
    if form.validate_on_submit():
        payment, status = attempt(form, lambda: payments.record_payment(
            actor, invoice.id, form.method.data, form.reference.data, form.received_on.data,
            form.amount.data.strip()))
        if payment is not None:
            extra = payment.amount - payment.applied
            flash(f"Payment of {payment.amount:,.2f} recorded"
                  + (f"; {extra:,.2f} is now the member's account credit." if extra else "."), "info")
            return redirect(url_for(".detail", invoice_id=invoice.id))
    elif request.method == "POST":
        status = 400
    return render_template("invoices/payment_form.html", invoice=invoice, form=form,
                           balance_due=payments.balance_due(invoice)), status


@bp.route("/invoices/<int:invoice_id>/credit-notes/new", methods=["GET", "POST"])
@login_required
def credit_note(invoice_id: int):
    """The reason and what to credit, then a confirmation page, then the credit note."""
    actor = current_actor()
    actor.require(Role.FINANCE)
    invoice = issuing.get_invoice(actor, invoice_id)
    form = CreditNoteForm()
    creditable = [line for line in invoice.lines if line.kind in credit_notes.PART_OF_LINE]
    form.line_ids.choices = [SelectChoice(line.id, f"{line.description}: {line.amount:,.2f}")
                             for line in creditable]
    status = 200
    if form.validate_on_submit():
        amount = (form.amount.data or "").strip() or None
        line_ids = form.line_ids.data or None
        if request.form.get("confirmed") != "yes":
            chosen = [each for each in creditable if each.id in (line_ids or [])]
            return render_template("invoices/credit_note_confirm.html", invoice=invoice, form=form,
                                   amount=amount, lines=chosen, balance_due=payments.balance_due(invoice))
        note, status = attempt(form, lambda: credit_notes.issue_credit_note(
            actor, invoice.id, reason=form.reason.data, amount=amount, line_ids=line_ids))
        if note is not None:
            flash(f"Credit note {note.number} for {note.amount:,.2f} issued.", "info")
            return redirect(url_for(".detail", invoice_id=invoice.id))
    elif request.method == "POST":
        status = 400
    return render_template("invoices/credit_note_form.html", invoice=invoice, form=form,
                           balance_due=payments.balance_due(invoice)), status


@bp.route("/invoices/<int:invoice_id>/void", methods=["GET", "POST"])
@login_required
def void(invoice_id: int):
    actor = current_actor()
    actor.require(Role.FINANCE)
    invoice = issuing.get_invoice(actor, invoice_id)
    form = VoidForm()
    status = 200
    if form.validate_on_submit():
        voided, status = attempt(form, lambda: credit_notes.void_invoice(actor, invoice.id, form.reason.data))
        if voided is not None:
            flash(f"Invoice {invoice.number} is void. Issue the round's invoices again to replace it.",
                  "info")
            return redirect(url_for(".detail", invoice_id=invoice.id))
    elif request.method == "POST":
        status = 400
    return render_template("invoices/void.html", invoice=invoice, form=form), status


# --- A round's invoices --------------------------------------------------------------------------


def _round_page(round_id: int, form: IssueForm, status: int = 200):
    """The round's invoices, a page at a time; its totals over all of them, in SQL."""
    actor = current_actor()
    actor.require(*STAFF)
    found = get_round(actor, round_id)
    pagination = db.paginate(select(Invoice).where(Invoice.round_id == found.id)
                             .order_by(Invoice.sequence_number), per_page=PER_PAGE, max_per_page=PER_PAGE,
                             error_out=False)
    invoices = pagination.items
    live = (Invoice.round_id == found.id) & (Invoice.status == InvoiceStatus.ISSUED)
    is_finance = actor.has_role(Role.FINANCE)
    can_issue = is_finance and found.status in issuing.INVOICEABLE
    return render_template(
        "invoices/round.html", round=found, invoices=invoices, settlements=payments.settlements(invoices),
        pagination=pagination, names=organisation_names(invoice.organisation_id for invoice in invoices),
        form=form,
        label=payments.status_label, run=issuing.approved_run(found.id),
        can_issue=can_issue, to_issue=issuing.members_to_invoice(found.id) if can_issue else 0,
        total=from_cents(int(db.session.scalar(select(sql_cents_sum(Invoice.total)).where(live)))),
        untold=len(reminders.due_for_notice(found.id)) if is_finance else 0,
        notice_form=NoticeForm(),
    ), status


@bp.get("/rounds/<int:round_id>/invoices")
@login_required
def round_invoices(round_id: int):
    return _round_page(round_id, IssueForm())


@bp.post("/rounds/<int:round_id>/invoices")
@login_required
def issue(round_id: int):
    actor = current_actor()
    actor.require(Role.FINANCE)
    form = IssueForm()
    if not form.validate_on_submit():
        return _round_page(round_id, form, 400)
    issued, status = attempt(form, lambda: issuing.issue_round_invoices(
        actor, round_id, without_subsidy_run=bool(form.without_subsidy_run.data)))
    if issued is None:
        return _round_page(round_id, form, status)
    if issued:
        flash(f"{len(issued)} invoice{'s' if len(issued) != 1 else ''} issued: "
              f"{issued[0].number} to {issued[-1].number}. Their members are not e-mailed yet: "
              "\"E-mail them now\" below does it, or the next scheduled send-reminders.", "info")
    else:
        flash("Every member allocated units already has an invoice for this round.", "info")
    return redirect(url_for(".round_invoices", round_id=round_id))


@bp.post("/rounds/<int:round_id>/invoices/notices")
@login_required
def send_notices(round_id: int):
    """E-mail each member of the round a notice of its invoice, if not done yet (one commit each)."""
    actor = current_actor()
    actor.require(Role.FINANCE)
    get_round(actor, round_id)
    if not NoticeForm().validate_on_submit():
        flash("The form expired. Please press \"E-mail them now\" again.", "error")
        return redirect(url_for(".round_invoices", round_id=round_id))
    summary = reminders.send_notices(actor, commit=db.session.commit, round_id=round_id)
    sent = summary.sent
    flash(f"{sent} member{'' if sent == 1 else 's'} e-mailed {'its' if sent == 1 else 'their'} invoice.",
          "info")
    for notice in summary.reminders:
        if notice.outcome in (reminders.FAILED, reminders.NO_RECIPIENTS):
            flash(f"{notice.number} ({notice.organisation}): {notice.outcome}, {notice.problem}. "
                  "The next send-reminders tries again.", "error")
    return redirect(url_for(".round_invoices", round_id=round_id))


# --- Refunds -------------------------------------------------------------------------------------


@bp.route("/payments/<int:payment_id>/refund", methods=["GET", "POST"])
@login_required
def refund(payment_id: int):
    """Finance pays money back: out of the payment's account credit first, then out of what it paid
    on the invoice (which is then due again). A card payment is refunded through Stripe at once."""
    actor = current_actor()
    actor.require(Role.FINANCE)
    payment = db.session.get(Payment, payment_id)
    if payment is None:
        raise NotFound("No such payment.")
    invoice = issuing.get_invoice(actor, payment.invoice_id) if payment.invoice_id else None
    form = RefundForm()
    status = 200
    if form.validate_on_submit():
        made, status = attempt(form, lambda: payments.refund_payment(
            actor, payment.id, form.amount.data.strip(), form.reason.data))
        if made is not None:
            how = " through Stripe" if made.stripe_refund else ""
            flash(f"Refund of {made.amount:,.2f} recorded{how}.", "info")
            if invoice is None:
                return redirect(url_for(".index"))
            return redirect(url_for(".detail", invoice_id=invoice.id))
    elif request.method == "POST":
        status = 400
    refunded = payments.refunded_of(payment)
    return render_template("invoices/refund_form.html", payment=payment, invoice=invoice, form=form,
                           refunded=refunded, left=payment.amount - refunded,
                           excess=payment.amount - payment.applied), status
