"""Outgoing e-mail behind one small interface, chosen by configuration.

Backends: ``console`` (logs the message; the default), ``file`` (one .eml
file per message in the instance folder), ``smtp``, and ``memory`` (keeps
messages in ``app.extensions["mail_outbox"]``, for tests).
"""

from __future__ import annotations

import logging
import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from uuid import uuid4

from flask import current_app

from buyersclub.db import after_commit

log = logging.getLogger("buyersclub.mail")


def _message(to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    message.set_content(body)
    return message


def send(to: str, subject: str, body: str) -> None:
    """Send once the current transaction commits (nothing is sent on rollback)."""
    app = current_app._get_current_object()

    def deliver() -> None:
        with app.app_context():
            send_now(to, subject, body)

    after_commit(deliver)


def send_now(to: str, subject: str, body: str) -> None:
    config = current_app.config
    backend = config["MAIL_BACKEND"]
    message = _message(to, subject, body)
    if backend == "memory":
        current_app.extensions.setdefault("mail_outbox", []).append(message)
    elif backend == "console":
        log.info("mail to %s: %s\n%s", to, subject, body)
    elif backend == "file":
        folder = Path(config["MAIL_FILE_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid4().hex[:8]}.eml"
        (folder / name).write_bytes(bytes(message))
    elif backend == "smtp":
        with smtplib.SMTP(config["MAIL_SMTP_HOST"], config["MAIL_SMTP_PORT"], timeout=30) as smtp:
            if config["MAIL_SMTP_STARTTLS"]:
                smtp.starttls()
            if config["MAIL_SMTP_USERNAME"]:
                smtp.login(config["MAIL_SMTP_USERNAME"], config["MAIL_SMTP_PASSWORD"] or "")
            smtp.send_message(message)
    else:
        raise RuntimeError(f"unknown mail backend {backend!r}")


def outbox() -> list[EmailMessage]:
    """Messages kept by the memory backend."""
    return current_app.extensions.setdefault("mail_outbox", [])
