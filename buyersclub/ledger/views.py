"""Ledger pages."""

from __future__ import annotations

from flask import Blueprint, abort

bp = Blueprint("ledger", __name__, template_folder="templates")


@bp.get("/ledger")
def trial_balance():
    abort(404)
