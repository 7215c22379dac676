"""Audit log pages."""

from __future__ import annotations

from flask import Blueprint, abort

bp = Blueprint("audit", __name__, template_folder="templates")


@bp.get("/audit")
def index():
    abort(404)
