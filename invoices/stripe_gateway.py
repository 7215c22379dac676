"""The one door to Stripe: a ``StripeClient`` built from the configuration.

* ``STRIPE_SECRET_KEY``: without it card payments are off (:func:`enabled` is
  false): the pay button is hidden and members are shown how to pay by bank
  transfer.
* ``STRIPE_API_BASE``: another Stripe-compatible API (a local test server);
  empty: Stripe's own.
* ``STRIPE_WEBHOOK_SECRET``: the endpoint's signing secret (``whsec_...``).
* ``STRIPE_CHECKOUT_ORIGIN``: where Checkout pages live, allowed as a form
  target in the Content-Security-Policy (the pay form's redirect goes there).
  Default ``https://checkout.stripe.com``, plus the origin of
  ``STRIPE_API_BASE`` when one is set.
* ``STRIPE_HTTP_CLIENT``: a ``stripe.HTTPClient`` to send requests with
  instead of the library's own (tests record requests and answer them).

Stripe's own errors become :class:`StripeUnavailable` (502): a message a
person can act on, and the caller writes nothing. The Stripe library is
imported only when a request is made or an event checked, so pages asking
only "is Stripe configured?" (and the factory, for its CSP) never load it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from flask import current_app

from buyersclub.errors import Conflict, DomainError

if TYPE_CHECKING:
    import stripe

log = logging.getLogger("buyersclub.stripe")

DEFAULT_CHECKOUT_ORIGIN = "https://checkout.stripe.com"
DEFAULT_NETWORK_RETRIES = 2

T = TypeVar("T")


class StripeUnavailable(DomainError):
    """Stripe refused the request or could not be reached (502); nothing was recorded."""

    status = 502
    code = "stripe_error"


def enabled() -> bool:
    return bool(current_app.config.get("STRIPE_SECRET_KEY"))


def webhook_secret() -> str | None:
    return current_app.config.get("STRIPE_WEBHOOK_SECRET") or None


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def checkout_origins(config: Mapping[str, Any]) -> list[str]:
    """The origins a pay form may be redirected to, for ``form-action``; none without a key."""
    if not config.get("STRIPE_SECRET_KEY"):
        return []
    origins = [config.get("STRIPE_CHECKOUT_ORIGIN") or DEFAULT_CHECKOUT_ORIGIN]
    if config.get("STRIPE_API_BASE") and not config.get("STRIPE_CHECKOUT_ORIGIN"):
        origins.append(_origin(config["STRIPE_API_BASE"]))
    return [origin.rstrip("/") for origin in origins if origin]


def client(http_client: stripe.HTTPClient | None = None) -> stripe.StripeClient:
    """A client for the configured account; 409 when card payments are not configured."""
    import stripe

    key = current_app.config.get("STRIPE_SECRET_KEY")
    if not key:
        raise Conflict("Card payments are not set up: the club has no Stripe key configured. Pay by bank "
                       "transfer instead.", code="stripe_not_configured")
    base = current_app.config.get("STRIPE_API_BASE")
    return stripe.StripeClient(
        key,
        base_addresses={"api": base} if base else None,
        http_client=http_client or current_app.config.get("STRIPE_HTTP_CLIENT"),
        max_network_retries=current_app.config.get("STRIPE_MAX_NETWORK_RETRIES", DEFAULT_NETWORK_RETRIES),
    )


def call(what: str, request: Callable[[], T]) -> T:
    """Run one request to Stripe; its failure becomes a :class:`StripeUnavailable` naming ``what``."""
    import stripe

    try:
        return request()
    except stripe.CardError as exc:
        raise StripeUnavailable(f"Stripe declined {what}: {exc.user_message or exc}") from exc
    except stripe.InvalidRequestError as exc:
        log.warning("stripe refused %s: %s", what, exc)
        raise StripeUnavailable(f"Stripe refused {what}: {exc.user_message or exc}. Nothing was "
                                "recorded.") from exc
    except stripe.StripeError as exc:
        log.warning("stripe failed on %s: %s", what, exc)
        raise StripeUnavailable(f"Stripe could not be reached for {what} ({type(exc).__name__}). Nothing "
                                "was recorded; please try again in a moment.") from exc


def verified_event(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    """The event as plain data, once its signature and timestamp are checked.

    Raises :class:`BadSignature` for a missing or wrong signature, a stale
    timestamp (older than Stripe's default tolerance, 300 s) or a body that is
    not an event.
    """
    import stripe

    if not signature:
        raise BadSignature("no Stripe-Signature header")
    try:
        stripe.Webhook.construct_event(payload, signature, secret)
        event = json.loads(payload)
    except stripe.SignatureVerificationError as exc:
        raise BadSignature(str(exc)) from exc
    except ValueError as exc:
        raise BadSignature(f"the body is not an event: {exc}") from exc
    if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
        raise BadSignature("the body is not an event")
    return event


class BadSignature(Exception):
    """A webhook request that is not provably from Stripe, now."""
