"""The audit log page: who did what, when, to which record, with before and after.

Administrators only. Newest first, paginated, filtered by the query string
(a GET form, so a filtered view can be bookmarked or shared).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from flask import Blueprint, render_template, request
from flask_login import login_required
from flask_wtf import FlaskForm
from sqlalchemy import Select, select
from wtforms import DateField, IntegerField, SearchField, SelectField
from wtforms.validators import Length, NumberRange, Optional, ValidationError

from buyersclub.accounts.models import Role
from buyersclub.accounts.views import current_actor
from buyersclub.audit.models import AuditEvent
from buyersclub.db import db
from buyersclub.organisations.models import Organisation
from buyersclub.organisations.services import organisation_names

bp = Blueprint("audit", __name__, template_folder="templates")

PER_PAGE = 50


class _DateField(DateField):
    """A date as YYYY-MM-DD, with a message a person can act on."""

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError as exc:
            raise ValueError("Enter a date as YYYY-MM-DD, for example 2026-03-31.") from exc


class _IdField(IntegerField):
    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError as exc:
            raise ValueError("Enter a record number (a whole number), or leave it empty.") from exc


class AuditFilterForm(FlaskForm):
    """Filters from the query string; a GET form has no CSRF token."""

    class Meta:
        csrf = False

    action = SelectField("Action", validators=[Optional()], validate_choice=True)
    entity_type = SelectField("Record type", validators=[Optional()])
    entity_id = _IdField(
        "Record number",
        validators=[Optional(), NumberRange(min=1, message="Record numbers start at 1.")],
    )
    actor = SearchField(
        "Who (e-mail)",
        validators=[Optional(), Length(max=254)],
        description="The whole address or part of it; 'cli' finds command-line changes.",
    )
    organisation = SelectField("Organisation", validators=[Optional()])
    date_from = _DateField("From", validators=[Optional()], description="YYYY-MM-DD, UTC")
    date_to = _DateField("To", validators=[Optional()], description="YYYY-MM-DD, UTC, included")

    def validate_date_to(self, field):
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError("The end date is before the start date.")


def _choices(form: AuditFilterForm) -> None:
    actions = db.session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action))
    types = db.session.scalars(
        select(AuditEvent.entity_type).distinct().order_by(AuditEvent.entity_type)
    )
    organisations = db.session.execute(
        select(Organisation.id, Organisation.name).order_by(Organisation.name)
    )
    form.action.choices = [("", "Any action"), *((name, name) for name in actions)]
    form.entity_type.choices = [("", "Any record"), *((name, name) for name in types)]
    form.organisation.choices = [("", "Any organisation"),
                                 *((str(org_id), name) for org_id, name in organisations)]


def _start_of(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def filtered_events(form: AuditFilterForm) -> Select:
    """The events matching a validated filter form, newest first."""
    statement = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if form.action.data:
        statement = statement.where(AuditEvent.action == form.action.data)
    if form.entity_type.data:
        statement = statement.where(AuditEvent.entity_type == form.entity_type.data)
    if form.entity_id.data is not None:
        statement = statement.where(AuditEvent.entity_id == form.entity_id.data)
    if form.actor.data:
        statement = statement.where(
            AuditEvent.actor_label.icontains(form.actor.data.strip(), autoescape=True)
        )
    if form.organisation.data:
        statement = statement.where(AuditEvent.organisation_id == int(form.organisation.data))
    if form.date_from.data:
        statement = statement.where(AuditEvent.at >= _start_of(form.date_from.data))
    if form.date_to.data:
        statement = statement.where(
            AuditEvent.at < _start_of(form.date_to.data + timedelta(days=1))
        )
    return statement


@dataclass(frozen=True)
class Change:
    field: str
    before: str
    after: str


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def changes(event: AuditEvent) -> list[Change]:
    """The fields that differ between before and after (all of them for a creation)."""
    before = event.before or {}
    after = event.after or {}
    names = list(after) + [name for name in before if name not in after]
    return [
        Change(name, _shown(before.get(name)), _shown(after.get(name)))
        for name in names
        if name not in before or name not in after or before[name] != after[name]
    ]


@bp.get("/audit")
@login_required
def index():
    current_actor().require(Role.ADMIN)
    form = AuditFilterForm(formdata=request.args)
    _choices(form)
    filtering = any(request.args.get(name) for name in form.data)
    if filtering and not form.validate():
        return render_template("audit/index.html", form=form, pagination=None,
                               filtering=True, organisations={}, changes=changes), 400
    pagination = db.paginate(filtered_events(form), per_page=PER_PAGE, max_per_page=PER_PAGE,
                             error_out=False)
    organisations = organisation_names(event.organisation_id for event in pagination.items)
    return render_template("audit/index.html", form=form, pagination=pagination,
                           filtering=filtering, organisations=organisations, changes=changes)
