"""buyersclub: pooled procurement for harm-reduction buyers' clubs.

``create_app`` is the application factory (``flask --app buyersclub`` finds
it). This package's own import stays light, so the pure modules inside it
(``buyersclub.money``) and the engines that use them load without Flask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(config: dict[str, Any] | None = None) -> Flask:
    from buyersclub.factory import create_app as build

    return build(config)
