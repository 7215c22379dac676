"""Forms of the catalogue, round and commitment pages.

The services validate again and name the field; ``attach_error`` puts their
message next to the matching form field (``price_breaks.1.unit_cost`` is the
second row's unit cost).
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    Form,
    FormField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from buyersclub.errors import DomainError
from buyersclub.organisations.models import DOCUMENT_LABELS
from buyersclub.web.forms import show_on_form
from orders.models import AllocationPolicy, ProductCategory

BREAK_ROWS = 5

CATEGORY_LABELS = {
    ProductCategory.PIPES: "Pipes",
    ProductCategory.NALOXONE: "Naloxone",
    ProductCategory.OXYGEN: "Oxygen",
    ProductCategory.OTHER: "Other",
}
POLICY_LABELS = {
    AllocationPolicy.PROPORTIONAL: "Proportional (fair shares when short)",
    AllocationPolicy.FIRST_COME_FIRST_SERVED: "First come, first served",
}


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class SupplierForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=160)], filters=[_strip])
    contact_name = StringField("Contact name", validators=[Optional(), Length(max=120)], filters=[_strip])
    contact_email = StringField("Contact e-mail", validators=[Optional(), Length(max=254)], filters=[_strip],
                                description="Where purchase orders go.")
    address = TextAreaField("Address", validators=[Optional(), Length(max=2000)])
    is_active = BooleanField("Active (offered in new rounds)", default=True)


class BreakRow(Form):
    min_units = IntegerField("From units", validators=[Optional(), NumberRange(min=1)])
    unit_cost = StringField("Unit cost", validators=[Optional()], filters=[_strip])


class ProductForm(FlaskForm):
    supplier_id = SelectField("Supplier", coerce=int, validators=[InputRequired()])
    sku = StringField("Supplier's code (SKU)", validators=[DataRequired(), Length(max=40)], filters=[_strip])
    name = StringField("Name", validators=[DataRequired(), Length(max=160)], filters=[_strip])
    category = SelectField("Category",
                           choices=[SelectChoice(key.value, label) for key, label in CATEGORY_LABELS.items()])
    unit = StringField("Unit", validators=[DataRequired(), Length(max=60)], filters=[_strip],
                       description='What one unit is, e.g. "box of 2 nasal doses", "vial", "pipe".')
    pack_size = IntegerField("Pack size", validators=[InputRequired(), NumberRange(min=1)],
                             description="Units per case: the supplier sells whole cases only.")
    restrictions = TextAreaField(
        "May not be shipped to", validators=[Optional()],
        description="One jurisdiction per line: a country code (US) or a country and region (US/ID).")
    required_document = SelectField(
        "Document required on file",
        choices=[SelectChoice("", "None")]
        + [SelectChoice(key.value, label) for key, label in DOCUMENT_LABELS.items()])
    lot_tracked = BooleanField("Track lots and expiry dates")
    description = TextAreaField("Description", validators=[Optional(), Length(max=4000)])
    is_active = BooleanField("Active (can be offered in rounds)", default=True)


# FormField rows can't be declared in a list: give each row its own attribute.
for _index in range(BREAK_ROWS):
    setattr(ProductForm, f"break_{_index}", FormField(BreakRow, label=f"Price break {_index + 1}"))


def break_rows(form: ProductForm) -> list:
    return [getattr(form, f"break_{index}") for index in range(BREAK_ROWS)]


class RoundForm(FlaskForm):
    supplier_id = SelectField("Supplier", coerce=int, validators=[InputRequired()])
    name = StringField("Name", validators=[DataRequired(), Length(max=160)], filters=[_strip],
                       description='e.g. "Naloxone, spring 2026".')
    deadline = DateTimeLocalField("Deadline (UTC)", format="%Y-%m-%dT%H:%M", validators=[InputRequired()],
                                  description="Commitments are accepted until this time, in UTC.")
    minimum_order = StringField("Supplier's minimum order", default="0.00", filters=[_strip],
                                description="An amount, e.g. 1000.00. Below it the round is cancelled.")
    allocation_policy = SelectField("When short", choices=[SelectChoice(key.value, label)
                                                           for key, label in POLICY_LABELS.items()])
    operating_share = StringField("Operating share", default="0.05", filters=[_strip],
                                  description="Share of revenue kept for operating costs, e.g. 0.05.")
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=4000)])


class ItemForm(FlaskForm):
    product_id = SelectField("Product", coerce=int, validators=[InputRequired()])
    club_price = StringField("Club price per unit", validators=[DataRequired()], filters=[_strip],
                             description="What members pay, e.g. 40.00.")
    member_cap = IntegerField("Most units per member", validators=[Optional(), NumberRange(min=1)],
                              description="Leave empty for no cap.")


class ExtendForm(FlaskForm):
    deadline = DateTimeLocalField("New deadline (UTC)", format="%Y-%m-%dT%H:%M", validators=[InputRequired()])


class CancelForm(FlaskForm):
    reason = TextAreaField("Reason", validators=[DataRequired(message="Say why the round is cancelled."),
                                                 Length(max=2000)],
                           description="E-mailed to the staff of every member that committed.")


class CommitmentForm(FlaskForm):
    quantity = IntegerField("Quantity", validators=[InputRequired(), NumberRange(min=0)],
                            description="0 withdraws.")
    tolerance = IntegerField("Tolerance", validators=[Optional(), NumberRange(min=0)], default=0,
                             description="Extra units you would accept so cases fill.")


def attach_error(form: FlaskForm, error: DomainError, aliases: dict[str, str] | None = None) -> None:
    """Show a service error next to its field, or above the form (``buyersclub.web.forms.show_on_form``);
    a price break's error goes to its cell in the rows of breaks, and is repeated above the form."""
    names = {"restricted_jurisdictions": "restrictions", **(aliases or {})}
    parts = names.get(error.field or "", error.field or "").split(".")
    if parts[0] == "price_breaks" and len(parts) >= 2 and parts[1].isdigit() and int(parts[1]) < BREAK_ROWS:
        row = getattr(form, f"break_{parts[1]}")
        target = row.form[parts[2]] if len(parts) > 2 and parts[2] in row.form else None
        if target is not None:
            target.errors = [*target.errors, error.message]
            form.form_errors.append(f"{row.label.text}: {error.message}")
            return
    show_on_form(form, error, names)
