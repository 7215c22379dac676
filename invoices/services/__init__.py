"""Invoices services: numbering, issuing, payments and refunds, credit notes and voids.

Every function that changes data takes the acting user first, checks the
finance role, flushes (never commits) and writes an audit event; every
movement of money is one balanced journal entry.
"""

from invoices.services import immutability  # noqa: F401  (the guard listens from import on)
