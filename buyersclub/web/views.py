"""The start page: a welcome for visitors, a dashboard for each role."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user

from buyersclub.web import dashboard

bp = Blueprint("web", __name__, template_folder="templates")


@bp.get("/")
def home():
    if not current_user.is_authenticated:
        return render_template("web/welcome.html")
    return render_template("web/dashboard.html", **dashboard.for_user(current_user))
