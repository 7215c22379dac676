"""The OpenAPI document: valid 3.1, complete, and in agreement with API.md."""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate

from buyersclub.api.core import API_PREFIX, ApiBlueprint

# The foundation paths of API.md that integrations rely on.
FOUNDATION = [
    ("get", "/api/v1/me"),
    ("get", "/api/v1/organisations"),
    ("post", "/api/v1/organisations"),
    ("get", "/api/v1/organisations/{organisation_id}"),
    ("patch", "/api/v1/organisations/{organisation_id}"),
    ("post", "/api/v1/organisations/{organisation_id}/approve"),
    ("post", "/api/v1/organisations/{organisation_id}/reject"),
    ("get", "/api/v1/organisations/{organisation_id}/members"),
    ("post", "/api/v1/organisations/{organisation_id}/members"),
    ("put", "/api/v1/organisations/{organisation_id}/assessment"),
    ("get", "/api/v1/ledger/trial-balance"),
    ("get", "/api/v1/tokens"),
    ("post", "/api/v1/tokens"),
    ("post", "/api/v1/tokens/{token_id}/revoke"),
]
ERRORS = ("400", "401", "403", "404", "409", "422")


def _document(client):
    response = client.get("/api/v1/openapi.json")  # no token needed
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


@pytest.fixture(scope="module")
def document(app):
    return _document(app.test_client())


def _shape(path: str) -> str:
    """A path with its parameter names blanked, to compare with API.md's ``{id}``."""
    return re.sub(r"\{[^}]+\}", "{}", path)


def _operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_the_document_is_valid_openapi_3_1(client):
    document = _document(client)
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_a_body_model_is_documented(api):
    document = _document(api)
    operation = document["paths"]["/api/v1/test/parcels"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].startswith("#/components/schemas/ParcelIn")
    assert operation["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]


def test_every_registered_endpoint_is_documented(app, client):
    document = _document(client)
    blueprints = [bp for bp in app.blueprints.values() if isinstance(bp, ApiBlueprint)]
    specs = [spec for bp in blueprints for spec in bp.specs]
    assert specs
    for spec in specs:
        path = API_PREFIX + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", spec.rule)
        operation = document["paths"][path][spec.method.lower()]
        assert operation["summary"] == spec.summary
        assert operation["security"] == [{"bearer": []}]
        assert str(spec.status) in operation["responses"]
        for status in ERRORS:
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}
        headers = [p["name"] for p in operation["parameters"] if p["in"] == "header"]
        assert headers == (["Idempotency-Key"] if spec.method == "POST" else [])
        if spec.paginated:
            queries = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
            assert {"page", "per_page"} <= queries
        for name in re.findall(r"\{(\w+)\}", path):
            assert {"name": name, "in": "path"}.items() <= next(
                p for p in operation["parameters"] if p["name"] == name).items()


def test_no_api_route_escapes_the_document(app, client):
    """A route added with a plain ``@bp.route`` would skip auth and the document: catch it."""
    document = _document(client)
    documented = {(method, _shape(path)) for method, path, _ in _operations(document)}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API_PREFIX + "/") or rule.rule == API_PREFIX + "/openapi.json":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (method.lower(), _shape(path)) in documented, f"{method} {rule.rule}"


def test_the_error_schema_and_bearer_scheme(document):
    components = document["components"]
    error = components["schemas"]["Error"]
    assert error["properties"]["error"]["required"] == ["code", "message", "field"]
    assert components["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}


def test_paginated_lists_are_described_as_pages(document):
    operation = document["paths"]["/api/v1/tokens"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["items", "page", "pages", "total"]
    per_page = next(p for p in operation["parameters"] if p["name"] == "per_page")
    assert "200" in per_page["description"]


def test_a_new_tokens_secret_is_documented_as_shown_once(document):
    operation = document["paths"]["/api/v1/tokens"]["post"]
    assert operation["responses"]["201"]["headers"]["Idempotent-Replayed"]
    assert "null" in operation["description"]


@pytest.mark.parametrize(("method", "path"), FOUNDATION, ids=[f"{m} {p}" for m, p in FOUNDATION])
def test_the_foundation_paths_of_api_md_are_there(document, method, path):
    documented = {(m, _shape(p)) for m, p, _ in _operations(document)}
    assert (method, _shape(path)) in documented
