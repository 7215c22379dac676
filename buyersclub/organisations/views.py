"""Organisation pages."""

from __future__ import annotations

from flask import Blueprint, abort

bp = Blueprint("organisations", __name__, template_folder="templates")


@bp.get("/organisations")
def index():
    abort(404)


@bp.get("/apply")
def apply():
    abort(404)


@bp.get("/organisations/<int:organisation_id>")
def detail(organisation_id: int):
    abort(404)
