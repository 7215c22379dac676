"""Account endpoints of the JSON API."""

from __future__ import annotations

from buyersclub.api.core import ApiBlueprint

bp = ApiBlueprint("accounts_api", __name__, tag="account")
