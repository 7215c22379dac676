"""Settings, read from the environment.

Every setting has a safe default for the embedded SQLite database. In
production mode (the default) the application refuses to start without
``BUYERSCLUB_SECRET_KEY``; in development and testing a random key is kept in
the instance folder so that sessions survive a restart.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from decimal import Decimal, InvalidOperation
from pathlib import Path

MODES = ("production", "development", "testing")


class ConfigurationError(RuntimeError):
    """The environment does not describe a usable configuration."""


def normalise_database_url(url: str) -> str:
    """Point PostgreSQL URLs at psycopg 3, whatever spelling the host used."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _flag(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _lines(raw: str) -> str | None:
    """A multi-line text from one variable: a literal ``\\n`` starts a new line."""
    text = "\n".join(line.strip() for line in raw.replace("\\n", "\n").splitlines()).strip()
    return text or None


def _tax_rates(raw: str) -> dict[str, Decimal]:
    """``US-MA=0.0625,US=0`` -> {"US-MA": Decimal("0.0625"), "US": Decimal("0")}."""
    rates: dict[str, Decimal] = {}
    for part in filter(None, (piece.strip() for piece in raw.split(","))):
        where, _, rate = part.partition("=")
        where = where.strip().upper()
        try:
            value = Decimal(rate.strip())
        except InvalidOperation:
            value = Decimal("-1")
        if not where or not value.is_finite() or not Decimal("0") <= value < Decimal("1"):
            raise ConfigurationError(
                f"BUYERSCLUB_TAX_RATES: {part!r} should look like US-MA=0.0625 (a rate from 0 to below 1)"
            )
        rates[where] = value
    return rates


def _prefix(env, name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    if not value.isalnum() or len(value) > 10:
        raise ConfigurationError(f"{name} must be up to 10 letters or digits, not {value!r}")
    return value


def _paper_size(value: str) -> str:
    size = value.strip().upper() or "A4"
    if size not in {"A4", "LETTER"}:
        raise ConfigurationError(f"BUYERSCLUB_PAPER_SIZE must be A4 or Letter, not {value!r}")
    return "A4" if size == "A4" else "Letter"


def _whole_number(env, name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ConfigurationError(f"{name} must be a whole number, not {raw!r}")
    return int(raw)


def _instance_secret(instance_path: str) -> str:
    """The instance's generated secret, created once even when processes race.

    The key is written whole to a private temporary file and then linked into
    place, which fails if another process got there first: nobody ever reads a
    half-written key, and every process ends up with the same one.
    """
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
            os.chmod(temporary, 0o600)
            with contextlib.suppress(FileExistsError):  # another process was first
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    return path.read_text().strip()


def load(instance_path: str, environ: dict[str, str] | None = None) -> dict:
    """Build the Flask configuration mapping from environment variables."""
    env = os.environ if environ is None else environ
    mode = env.get("BUYERSCLUB_ENV", "production").strip().lower()
    if mode not in MODES:
        raise ConfigurationError(
            f"BUYERSCLUB_ENV must be one of {', '.join(MODES)}, not {mode!r}"
        )

    secret = env.get("BUYERSCLUB_SECRET_KEY", "").strip()
    if not secret:
        if mode == "production":
            raise ConfigurationError(
                "BUYERSCLUB_SECRET_KEY is not set. Production mode needs a long random "
                "secret, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`. "
                "For a local trial set BUYERSCLUB_ENV=development instead."
            )
        secret = _instance_secret(instance_path)

    default_db = "sqlite:///" + str(Path(instance_path) / "buyersclub.sqlite3")
    database_url = normalise_database_url(env.get("DATABASE_URL", "").strip() or default_db)
    secure_cookies = _flag(env.get("BUYERSCLUB_SECURE_COOKIES"), default=mode == "production")

    return {
        "BUYERSCLUB_ENV": mode,
        "TESTING": mode == "testing",
        "SECRET_KEY": secret,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": secure_cookies,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": secure_cookies,
        "WTF_CSRF_TIME_LIMIT": None,
        "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
        "CLUB_NAME": env.get("BUYERSCLUB_CLUB_NAME", "Buyers' Club"),
        "CLUB_CURRENCY": env.get("BUYERSCLUB_CURRENCY", "USD"),
        # Where suppliers deliver (printed on purchase orders); empty: "as agreed".
        "CLUB_DELIVERY_ADDRESS": env.get("BUYERSCLUB_CLUB_DELIVERY_ADDRESS", "").strip() or None,
        "PAPER_SIZE": _paper_size(env.get("BUYERSCLUB_PAPER_SIZE", "A4")),
        # Sales tax by jurisdiction, e.g. "US-MA=0.0625,US-NY=0.04" (country, or country-region).
        "INVOICE_TAX_RATES": _tax_rates(env.get("BUYERSCLUB_TAX_RATES", "")),
        "INVOICE_NET_DAYS": _whole_number(env, "BUYERSCLUB_INVOICE_NET_DAYS", 30),
        "INVOICE_PREFIX": _prefix(env, "BUYERSCLUB_INVOICE_PREFIX", "INV"),
        "CREDIT_NOTE_PREFIX": _prefix(env, "BUYERSCLUB_CREDIT_NOTE_PREFIX", "CN"),
        # Printed on invoices and statements: the club's postal address and how to pay by
        # bank transfer ("\n" in the variable starts a new line).
        "CLUB_ADDRESS": _lines(env.get("BUYERSCLUB_CLUB_ADDRESS", "")),
        "CLUB_BANK_DETAILS": _lines(env.get("BUYERSCLUB_BANK_DETAILS", "")),
        # Card payments through Stripe Checkout; without a secret key the pay button is hidden.
        "STRIPE_SECRET_KEY": env.get("BUYERSCLUB_STRIPE_SECRET_KEY", "").strip() or None,
        "STRIPE_WEBHOOK_SECRET": env.get("BUYERSCLUB_STRIPE_WEBHOOK_SECRET", "").strip() or None,
        # Another Stripe-compatible API (e.g. a local test server); empty: Stripe's own.
        "STRIPE_API_BASE": env.get("BUYERSCLUB_STRIPE_API_BASE", "").rstrip("/") or None,
        # Where Checkout pages live (allowed as a form target); empty: Stripe's own.
        "STRIPE_CHECKOUT_ORIGIN": env.get("BUYERSCLUB_STRIPE_CHECKOUT_ORIGIN", "").rstrip("/") or None,
        # Overdue notices: at most one per invoice every this many days.
        "REMINDER_INTERVAL_DAYS": _whole_number(env, "BUYERSCLUB_REMINDER_INTERVAL_DAYS", 7),
        # Processes rendering a round's invoice PDFs.
        "PDF_WORKERS": _whole_number(env, "BUYERSCLUB_PDF_WORKERS", 2),
        "MAIL_BACKEND": env.get("BUYERSCLUB_MAIL_BACKEND", "console"),
        "MAIL_FROM": env.get("BUYERSCLUB_MAIL_FROM", "club@localhost"),
        "MAIL_FILE_DIR": env.get("BUYERSCLUB_MAIL_FILE_DIR", str(Path(instance_path) / "mail")),
        "MAIL_SMTP_HOST": env.get("BUYERSCLUB_SMTP_HOST", "localhost"),
        "MAIL_SMTP_PORT": int(env.get("BUYERSCLUB_SMTP_PORT", "25")),
        "MAIL_SMTP_USERNAME": env.get("BUYERSCLUB_SMTP_USERNAME") or None,
        "MAIL_SMTP_PASSWORD": env.get("BUYERSCLUB_SMTP_PASSWORD") or None,
        "MAIL_SMTP_STARTTLS": _flag(env.get("BUYERSCLUB_SMTP_STARTTLS")),
        "LOGIN_THROTTLE_LIMIT": int(env.get("BUYERSCLUB_LOGIN_THROTTLE_LIMIT", "5")),
        "LOGIN_THROTTLE_WINDOW_MINUTES": int(env.get("BUYERSCLUB_LOGIN_THROTTLE_MINUTES", "15")),
        "PASSWORD_RESET_MAX_AGE": int(env.get("BUYERSCLUB_PASSWORD_RESET_MAX_AGE", "3600")),
        "INVITATION_MAX_AGE": int(env.get("BUYERSCLUB_INVITATION_MAX_AGE", str(7 * 24 * 3600))),
        "PUBLIC_URL": env.get("BUYERSCLUB_PUBLIC_URL", "").rstrip("/") or None,
        # How many reverse proxies in front set X-Forwarded-For/-Proto (0: trust none).
        "TRUSTED_PROXIES": _whole_number(env, "BUYERSCLUB_TRUSTED_PROXIES", 0),
    }
