"""The address of an invoice's page, for mail, PDFs and Stripe's return links.

``PUBLIC_URL`` (the site as members reach it) and the page's path when it is
set; else this request's host, or ``SERVER_NAME``'s outside a request; else
nothing (:func:`invoice_page_url` returns None: a batch with neither knows no
host).
"""

from __future__ import annotations

from flask import current_app, url_for


def invoice_path(invoice_id: int, **query: str) -> str:
    return current_app.url_map.bind("localhost").build("invoices.detail", {"invoice_id": invoice_id, **query})


def invoice_page_url(invoice_id: int, **query: str) -> str | None:
    public = current_app.config.get("PUBLIC_URL")
    if public:
        return public.rstrip("/") + invoice_path(invoice_id, **query)
    try:
        return url_for("invoices.detail", invoice_id=invoice_id, _external=True, **query)
    except RuntimeError:  # outside a request, with no SERVER_NAME
        return None
