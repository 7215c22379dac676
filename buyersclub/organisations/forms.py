"""Organisation forms. The services validate again; these give early, friendly messages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, EqualTo, InputRequired, Length, Optional

from buyersclub.accounts.services import MIN_PASSWORD_LENGTH
from buyersclub.organisations.models import (
    BUDGET_LABELS,
    DOCUMENT_LABELS,
    KIND_LABELS,
    PEOPLE_LABELS,
    MembershipStatus,
)
from buyersclub.organisations.services import MAX_REASON_LENGTH, PROFILE_FIELDS


def _choices(labels) -> list[SelectChoice]:
    return [SelectChoice("", "Choose…")] + [SelectChoice(key.value, label)
                                            for key, label in labels.items()]


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class _ApplicantFields(FlaskForm):
    """The applicant's own account. Declared before the profile so its fields come
    first on the page and in the error summary."""

    your_name = StringField("Your name", validators=[DataRequired(), Length(max=120)])
    email = EmailField("Your e-mail address", validators=[DataRequired(), Length(max=254)],
                       description="We send the club's decision here. You sign in with it.")
    password = PasswordField(
        "Choose a password", validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH, max=200)],
        description=f"At least {MIN_PASSWORD_LENGTH} characters. A few unrelated words work well.",
    )
    confirm = PasswordField(
        "Repeat the password",
        validators=[DataRequired(), EqualTo("password", message="The two passwords differ.")],
    )


class ProfileForm(FlaskForm):
    """The organisation's profile: what a member keeps up to date."""

    class Meta:
        def bind_field(self, form, unbound_field, options):
            filters = unbound_field.kwargs.get("filters", [])
            if unbound_field.field_class in (StringField, TextAreaField, EmailField):
                filters = [*filters, _strip]
            return unbound_field.bind(form=form, filters=filters, **options)

    name = StringField("Organisation name", validators=[DataRequired(), Length(max=160)],
                       description="As you want it to appear on invoices.")
    kind = SelectField("Kind of organisation", choices=_choices(KIND_LABELS),
                       validators=[DataRequired(message="Choose the kind of organisation.")])
    country = StringField(
        "Country", validators=[DataRequired(), Length(min=2, max=2)],
        description="Two-letter code, e.g. US, CA, GB. Some supplies cannot be shipped everywhere.",
    )
    region = StringField("State, province or region", validators=[DataRequired(), Length(max=80)])
    site_address_line1 = StringField("Site address", validators=[DataRequired(), Length(max=160)],
                                     description="Where shipments are delivered.")
    site_address_line2 = StringField("Site address, second line",
                                     validators=[Optional(), Length(max=160)])
    site_city = StringField("City or town", validators=[DataRequired(), Length(max=80)])
    site_postal_code = StringField("Postal code", validators=[DataRequired(), Length(max=20)])
    site_is_not_a_home = BooleanField(
        "This site is the organisation's premises, not anyone's home",
        validators=[InputRequired(message="Shipments can only go to an organisation's site.")],
        description="For everyone's safety the club never ships to a home address.",
    )
    tax_exempt_certificate = StringField(
        "Tax-exemption certificate number", validators=[Optional(), Length(max=80)],
        description="Leave empty if the organisation is not tax-exempt.",
    )
    budget_band = SelectField(
        "Annual budget", choices=_choices(BUDGET_LABELS),
        validators=[DataRequired(message="Choose the annual budget band.")],
        description="A band is enough; it helps the club share the subsidy fund fairly.",
    )
    people_reached_band = SelectField(
        "People reached", choices=_choices(PEOPLE_LABELS),
        validators=[DataRequired(message="Choose how many people you reach.")],
        description="A rough monthly count. Never send details about the people you serve.",
    )
    receives_public_funding = BooleanField("We receive public (government) funding")
    receives_private_funding = BooleanField("We receive private funding (foundations, donors)")
    accepts_short_dated = BooleanField(
        "We accept short-dated stock",
        description="Supplies close to their expiry date, often free or cheaper.",
    )

    def profile(self) -> dict:
        """The profile values for the services (empty optional text as None)."""
        return {name: (self[name].data if self[name].data != "" else None)
                for name in PROFILE_FIELDS}

    @classmethod
    def for_organisation(cls, organisation):
        form = cls(obj=organisation)
        if not form.is_submitted():
            for name in ("kind", "budget_band", "people_reached_band"):
                form[name].data = getattr(organisation, name).value
        return form


class ApplyWithAccountForm(_ApplicantFields, ProfileForm):
    """For a visitor without an account: their account and the organisation's profile."""


class RejectForm(FlaskForm):
    reason = TextAreaField(
        "Reason", validators=[DataRequired(message="Give the reason for the decision."),
                              Length(max=MAX_REASON_LENGTH)],
        filters=[_strip],
        description="Sent to the organisation's staff by e-mail.",
    )
    confirm = BooleanField(
        "I have checked the application and want to reject it",
        validators=[InputRequired(message="Tick the box to confirm the rejection.")],
    )


class AssessmentForm(FlaskForm):
    low_resource = BooleanField(
        "Low-resource programme",
        description="Low-resource programmes are eligible for the subsidy fund.",
    )
    reason = TextAreaField(
        "Reason", validators=[Length(max=MAX_REASON_LENGTH)], filters=[_strip],
        description="Required for a low-resource programme: what the assessment rests on.",
    )
    deprivation_decile = SelectField(
        "Deprivation decile of the area served",
        choices=[SelectChoice("", "Not known")] + [SelectChoice(str(n)) for n in range(1, 11)],
        description="1 is the most deprived tenth of areas, 10 the least.",
        validate_choice=True,
    )

    def decile(self) -> int | None:
        return int(self.deprivation_decile.data) if self.deprivation_decile.data else None


class DocumentForm(FlaskForm):
    kind = SelectField("Kind of document", choices=_choices(DOCUMENT_LABELS),
                       validators=[DataRequired(message="Choose the kind of document.")])
    reference = StringField(
        "Reference", validators=[DataRequired(), Length(max=120)], filters=[_strip],
        description="The document's number or title, as written on it.",
    )
    expires_on = DateField("Expires on", validators=[DataRequired(message="Enter the expiry date.")],
                           description="A renewal is recorded as a new document; the newest counts.")


class InviteForm(FlaskForm):
    name = StringField("Colleague's name", validators=[DataRequired(), Length(max=120)],
                       filters=[_strip])
    email = EmailField("Colleague's e-mail address", validators=[DataRequired(), Length(max=254)],
                       filters=[_strip],
                       description="They get a link to choose a password.")


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token."""


STATUS_FILTER_CHOICES = [("", "Any status")] + [(status.value, status.value.capitalize())
                                                for status in MembershipStatus]
