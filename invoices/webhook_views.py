"""``POST /stripe/webhook``: Stripe's signed events.

The signature is checked on the raw body with ``STRIPE_WEBHOOK_SECRET``
before anything is read: a missing or wrong signature, or one older than five
minutes, is 400; no secret configured is 503 (Stripe keeps the event and
retries). A verified event is handed to ``invoices.services.webhooks``; the
application commits its effect and its ``StripeEvent`` row together after a
2xx answer.

Answers other than 2xx make Stripe deliver the event again later: 409 when
the event is early (what it refers to is not recorded yet) or when a
concurrent copy of it won twice in a row; 502 when Stripe itself could not
be asked for a detail. A copy that loses a race to its twin (same event, or
the same payment intent under another event id) is retried once here, and
then finds the work done: 200.
"""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from flask import request as flask_request
from sqlalchemy.exc import DBAPIError, IntegrityError

from buyersclub.app import RACE_SQLSTATES
from buyersclub.db import db
from buyersclub.errors import DomainError
from invoices import stripe_gateway
from invoices.services import webhooks

bp = Blueprint("stripe_webhook", __name__)
log = logging.getLogger("buyersclub.stripe")

ATTEMPTS = 2


def _answer(status: int, **body):
    return jsonify(body), status


def _lost_a_race(exc: DBAPIError) -> bool:
    return isinstance(exc, IntegrityError) or getattr(exc.orig, "sqlstate", None) in RACE_SQLSTATES


@bp.post("/stripe/webhook")
def stripe_webhook():
    secret = stripe_gateway.webhook_secret()
    if not secret:
        log.error("a Stripe webhook arrived but STRIPE_WEBHOOK_SECRET is not configured")
        return _answer(503, error="Webhooks are not configured here (no signing secret).")
    try:
        event = stripe_gateway.verified_event(flask_request.get_data(), flask_request.headers.get(
            "Stripe-Signature"), secret)
    except stripe_gateway.BadSignature as exc:
        log.warning("refused a Stripe webhook: %s", exc)
        return _answer(400, error=f"Signature refused: {exc}")
    outcome = ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            outcome = webhooks.handle_event(event)
            break
        except DomainError as error:
            log.warning("stripe event %s (%s) answered %s: %s", event["id"], event["type"], error.status,
                        error.message)
            return _answer(error.status, error=error.message)
        except DBAPIError as exc:
            db.session.rollback()
            if not _lost_a_race(exc):
                raise
            if attempt == ATTEMPTS:
                log.warning("stripe event %s (%s) lost a race twice: %s", event["id"], event["type"], exc)
                return _answer(409, error="A concurrent delivery is being handled; send it again.")
    return _answer(200, received=True, outcome=outcome)
