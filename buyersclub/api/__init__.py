"""JSON API conventions (``core``), the OpenAPI document and the cross-cutting endpoints."""
