"""Invoices, credit notes, payments, statements and exports."""
