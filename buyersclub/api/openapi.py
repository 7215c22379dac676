"""The OpenAPI 3.1 document, generated from the registered endpoints."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from buyersclub.api.core import API_PREFIX, ApiBlueprint

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "field"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": ["string", "null"]},
            },
        }
    },
}

STATUS_TEXT = {
    400: "Bad input; `field` names the offending field",
    401: "No token, or an unknown or revoked one",
    403: "The token's user lacks the role",
    404: "Unknown, or another organisation's record",
    409: "Conflict with the record's state, or an Idempotency-Key reused with another body",
    422: "A business rule refused the request",
}


def _openapi_path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    params = []
    for converter, name in re.findall(r"<(?:(\w+):)?(\w+)>", rule):
        kind = "integer" if converter == "int" else "string"
        params.append({"name": name, "in": "path", "required": True, "schema": {"type": kind}})
    path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)
    return API_PREFIX + path, params


def _operation_id(method: str, rule: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "_", re.sub(r"<(?:\w+:)?(\w+)>", r"\1", rule.lower()))
    return f"{method.lower()}_{words.strip('_')}"


def _response_model(response: Any) -> type[BaseModel] | None:
    if isinstance(response, type) and issubclass(response, BaseModel):
        return response
    return None


def build(app: Flask) -> dict[str, Any]:
    blueprints = [bp for bp in app.blueprints.values() if isinstance(bp, ApiBlueprint)]
    models: set[type[BaseModel]] = set()
    for bp in blueprints:
        for spec in bp.specs:
            if spec.body is not None:
                models.add(spec.body)
            model = _response_model(spec.response)
            if model is not None:
                models.add(model)
    ordered = sorted(models, key=lambda model: model.__name__)
    keys = [(model, mode) for model in ordered for mode in ("validation", "serialization")]
    refs, defs = models_json_schema(keys, ref_template="#/components/schemas/{model}")
    schemas = dict(defs.get("$defs", {}))
    schemas["Error"] = ERROR_SCHEMA

    paths: dict[str, dict[str, Any]] = {}
    for bp in sorted(blueprints, key=lambda bp: bp.name):
        for spec in bp.specs:
            path, params = _openapi_path(spec.rule)
            operation: dict[str, Any] = {
                "summary": spec.summary,
                "tags": [spec.tag],
                "operationId": _operation_id(spec.method, spec.rule),
                "security": [{"bearer": []}],
                "parameters": list(params),
                "responses": {},
            }
            description = spec.description
            if spec.secret_fields:
                names = ", ".join(f"`{name}`" for name in spec.secret_fields)
                description = (f"{description}\n\n" if description else "") + (
                    f"{names} is shown once: an Idempotency-Key replay returns it as null."
                )
            if description:
                operation["description"] = description
            for name, text in spec.query.items():
                operation["parameters"].append(
                    {"name": name, "in": "query", "required": False, "description": text,
                     "schema": {"type": "string"}}
                )
            if spec.paginated:
                for name, text in (("page", "Page number, from 1"),
                                   ("per_page", "Items per page, at most 200")):
                    operation["parameters"].append(
                        {"name": name, "in": "query", "required": False, "description": text,
                         "schema": {"type": "integer", "minimum": 1}}
                    )
            if spec.method == "POST":
                operation["parameters"].append(
                    {"name": "Idempotency-Key", "in": "header", "required": False,
                     "description": "Replays the first response for the same key and body",
                     "schema": {"type": "string", "maxLength": 255}}
                )
            if spec.body is not None:
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": refs[(spec.body, "validation")]}},
                }
            success: dict[str, Any] = {"description": "OK"}
            model = _response_model(spec.response)
            if model is not None:
                item = refs[(model, "serialization")]
                schema = (
                    {"type": "object", "required": ["items", "page", "pages", "total"],
                     "properties": {
                        "items": {"type": "array", "items": item},
                        "page": {"type": "integer"}, "pages": {"type": "integer"},
                        "total": {"type": "integer"}}}
                    if spec.paginated else item
                )
                success["content"] = {"application/json": {"schema": schema}}
            elif isinstance(spec.response, dict):
                success["content"] = {"application/json": {"schema": spec.response}}
            if spec.method == "POST":
                success["headers"] = {
                    "Idempotent-Replayed": {
                        "description": "`true` when this is the stored response of an earlier "
                        "request with the same Idempotency-Key",
                        "schema": {"type": "string", "enum": ["true"]},
                    }
                }
            operation["responses"][str(spec.status)] = success
            for status, text in STATUS_TEXT.items():
                operation["responses"][str(status)] = {
                    "description": text,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
            paths.setdefault(path, {})[spec.method.lower()] = operation

    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{app.config['CLUB_NAME']} API",
            "version": "1",
            "description": "Pooled buying rounds, subsidies, invoices and the ledger. "
            "Money is a string with two decimals; errors are "
            '{"error": {"code", "message", "field"}}.',
        },
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
