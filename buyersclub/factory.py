"""The application factory: the composition root that wires every domain in.

Nothing imports this module but ``buyersclub.create_app``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from buyersclub import config as settings
from buyersclub.app import BuyersClubFlask
from buyersclub.db import db
from buyersclub.errors import DomainError
from buyersclub.extensions import csrf, login_manager, migrate

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = BuyersClubFlask("buyersclub", instance_relative_config=True)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    environ = None
    if config and "ENVIRON" in config:
        environ = config.pop("ENVIRON")
    app.config.update(settings.load(app.instance_path, environ))
    if config:
        app.config.update(config)

    _configure_logging(app)
    if app.config.get("TRUSTED_PROXIES"):
        # Behind a reverse proxy the client's address and scheme come from its headers;
        # without this, sign-in throttling by address would throttle the proxy itself.
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    _import_models()

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    login_manager.init_app(app)

    _register_blueprints(app)
    _register_error_handlers(app)
    _register_template_helpers(app)
    app.jinja_env.add_extension("jinja2.ext.do")

    from buyersclub.cli import register as register_cli

    register_cli(app)

    from invoices.stripe_gateway import checkout_origins

    @app.after_request
    def security_headers(response):
        # Browsers apply form-action to the redirect after a form is sent: "Pay by card" ends on Checkout.
        form_action = " ".join(["'self'", *checkout_origins(app.config)])
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            f"frame-ancestors 'none'; form-action {form_action}",
        )
        return response

    return app


def _import_models() -> None:
    """The factory is the composition root: every domain's models join the metadata here."""
    import buyersclub.models  # noqa: F401
    import invoices.models  # noqa: F401
    import orders.dashboard  # its dashboard panel registers itself
    import orders.models  # noqa: F401
    import subsidies.models
    import subsidies.services.free_stock  # noqa: F401  (registers its free units in orders.hooks)


def _configure_logging(app: Flask) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )


def _register_blueprints(app: Flask) -> None:
    from buyersclub.accounts import api as accounts_api
    from buyersclub.accounts import views as accounts_views
    from buyersclub.api import views as api_views
    from buyersclub.audit import views as audit_views
    from buyersclub.ledger import api as ledger_api
    from buyersclub.ledger import views as ledger_views
    from buyersclub.organisations import api as organisations_api
    from buyersclub.organisations import views as organisations_views
    from buyersclub.web import views as web_views
    from invoices import api as invoices_api
    from invoices import export_api as invoices_export_api
    from invoices import export_views as invoices_export_views
    from invoices import statement_api as invoices_statement_api
    from invoices import statement_views as invoices_statement_views
    from invoices import views as invoices_views
    from invoices import webhook_views as invoices_webhook_views
    from orders import api as orders_api
    from orders import close_api as orders_close_api
    from orders import close_views as orders_close_views
    from orders import delivery_api as orders_delivery_api
    from orders import delivery_views as orders_delivery_views
    from orders import views as orders_views
    from subsidies import fund_api as subsidies_fund_api
    from subsidies import fund_views as subsidies_fund_views
    from subsidies import runs_api as subsidies_runs_api
    from subsidies import runs_views as subsidies_runs_views

    for blueprint in (
        web_views.bp,
        accounts_views.bp,
        organisations_views.bp,
        ledger_views.bp,
        audit_views.bp,
        api_views.bp,
        accounts_api.bp,
        organisations_api.bp,
        ledger_api.bp,
        orders_views.bp,
        orders_api.bp,
        orders_close_views.bp,
        orders_close_api.bp,
        orders_delivery_views.bp,
        orders_delivery_api.bp,
        invoices_views.bp,
        invoices_api.bp,
        invoices_statement_views.bp,
        invoices_statement_api.bp,
        invoices_export_views.bp,
        invoices_export_api.bp,
        invoices_webhook_views.bp,
        subsidies_fund_views.bp,
        subsidies_fund_api.bp,
        subsidies_runs_views.bp,
        subsidies_runs_api.bp,
    ):
        app.register_blueprint(blueprint)
        if blueprint.url_prefix and blueprint.url_prefix.startswith("/api/"):
            csrf.exempt(blueprint)  # bearer tokens only: no ambient credentials to forge
    csrf.exempt(invoices_webhook_views.bp)  # Stripe signs its events; there is no session to forge


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _register_error_handlers(app: Flask) -> None:
    from buyersclub.api.core import domain_error_response, error_response

    @app.errorhandler(DomainError)
    def domain_error(error: DomainError):
        if _wants_json():
            return domain_error_response(error)
        return render_template("errors/error.html", code=error.status, message=error.message), (
            error.status
        )

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        message = "The form expired or was sent from elsewhere. Please go back, reload and try again."
        return render_template("errors/error.html", code=400, message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        code = error.code or 500
        messages = {
            400: "The request could not be understood.",
            403: "You do not have permission to see this page.",
            404: "There is nothing here, or it is not yours to see.",
            405: "That method is not allowed here.",
            413: "The upload is too large.",
        }
        message = messages.get(code, error.description or "Something went wrong.")
        if _wants_json():
            codes = {400: "bad_request", 403: "forbidden", 404: "not_found",
                     405: "method_not_allowed", 413: "too_large"}
            return error_response(code, codes.get(code, "error"), message)
        return render_template("errors/error.html", code=code, message=message), code

    @app.errorhandler(500)
    def server_error(error):
        message = "Something went wrong on our side. Nothing was saved; please try again."
        if _wants_json():
            return error_response(500, "server_error", message)
        return render_template("errors/error.html", code=500, message=message), 500

    @app.get("/healthz")
    def healthz():
        from sqlalchemy import text

        db.session.execute(text("SELECT 1"))
        return jsonify(status="ok")


def _register_template_helpers(app: Flask) -> None:
    from buyersclub.money import format_money

    @app.template_filter("money")
    def money_filter(amount):
        if amount is None:
            return ""
        return format_money(amount, app.config["CLUB_CURRENCY"])

    @app.template_filter("datetime")
    def datetime_filter(value):
        return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""

    @app.context_processor
    def club():
        return {"club_name": app.config["CLUB_NAME"]}
