"""The JSON API's conventions, in one place (see API.md).

Each domain declares its endpoints on an ``ApiBlueprint``::

    bp = ApiBlueprint("organisations_api", __name__)

    @bp.endpoint("/organisations/<int:organisation_id>", "GET",
                 summary="One organisation's profile", response=OrganisationOut)
    def get_organisation(actor, organisation_id):
        ...

The decorator authenticates the bearer token (401), checks roles (403),
parses and validates the JSON body with a pydantic model (400 naming the
field), replays ``Idempotency-Key`` POSTs, and records the endpoint for the
OpenAPI document. Handlers take an ``Actor`` and return data (a pydantic model,
a dict or a list) or ``(data, status)``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, g, request
from pydantic import BaseModel, ValidationError
from sqlalchemy import Select, func, select

from buyersclub.accounts.models import Role
from buyersclub.actor import Actor
from buyersclub.api.models import IdempotencyRecord
from buyersclub.db import db
from buyersclub.errors import Conflict, DomainError, InvalidInput, NotAuthenticated

API_PREFIX = "/api/v1"
MAX_PER_PAGE = 200
DEFAULT_PER_PAGE = 50


def error_response(status: int, code: str, message: str, field_name: str | None = None) -> Response:
    body = {"error": {"code": code, "message": message, "field": field_name}}
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="buyersclub"'
    return response


def json_response(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(_jsonable(data)), status=status, mimetype="application/json")


def _jsonable(data: Any) -> Any:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, list):
        return [_jsonable(item) for item in data]
    if isinstance(data, dict):
        return {key: _jsonable(value) for key, value in data.items()}
    return data


def _field_path(location: tuple[Any, ...]) -> str | None:
    parts = [str(part) for part in location if part not in ("body",)]
    return ".".join(parts) if parts else None


def _validation_message(error: dict[str, Any]) -> str:
    name = _field_path(error.get("loc", ())) or "body"
    if error.get("type") == "missing":
        return f"{name} is required."
    if error.get("type") == "extra_forbidden":
        return f"{name} is not a field of this request."
    return f"{name}: {error.get('msg', 'invalid value')}."


def parse_body(model: type[BaseModel]) -> BaseModel:
    """The request's JSON body validated by ``model``; 400 naming the field otherwise."""
    raw = request.get_data(cache=True)
    try:
        payload = json.loads(raw or b"null")
    except ValueError as exc:
        raise InvalidInput("The request body is not valid JSON.", code="malformed_json") from exc
    if not isinstance(payload, dict):
        raise InvalidInput("The request body must be a JSON object.", code="malformed_json")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(_validation_message(first), field=_field_path(first["loc"])) from exc


def bearer_actor() -> Actor:
    """The actor behind the request's bearer token, or 401."""
    from buyersclub.accounts.services import user_for_token

    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("Send an API token as 'Authorization: Bearer <token>'.")
    user = user_for_token(token.strip())
    if user is None:
        raise NotAuthenticated("The API token is unknown, revoked, or its account is disabled.")
    return Actor.for_user(user, address=request.remote_addr)


@dataclass
class EndpointSpec:
    rule: str
    method: str
    summary: str
    roles: tuple[Role, ...]
    body: type[BaseModel] | None
    response: Any
    status: int
    paginated: bool
    description: str
    tag: str
    query: dict[str, str] = field(default_factory=dict)
    # Top-level response fields never kept for Idempotency-Key replays (e.g. a new token's secret).
    secret_fields: tuple[str, ...] = ()


class ApiBlueprint(Blueprint):
    """A blueprint under /api/v1 whose endpoints follow the API conventions."""

    def __init__(self, name: str, import_name: str, tag: str):
        super().__init__(name, import_name, url_prefix=API_PREFIX)
        self.tag = tag
        self.specs: list[EndpointSpec] = []

    def endpoint(
        self,
        rule: str,
        method: str,
        *,
        summary: str,
        roles: tuple[Role, ...] | None = None,
        body: type[BaseModel] | None = None,
        response: Any = None,
        status: int = 200,
        paginated: bool = False,
        query: dict[str, str] | None = None,
        secret_fields: tuple[str, ...] = (),
    ) -> Callable:
        """Register an endpoint. ``roles=None`` lets any signed-in user call it.

        ``secret_fields`` names top-level response fields that must never be
        stored: an Idempotency-Key replay returns them as ``null``.
        """

        def decorator(view: Callable) -> Callable:
            spec = EndpointSpec(
                rule=rule,
                method=method.upper(),
                summary=summary,
                roles=tuple(roles or ()),
                body=body,
                response=response,
                status=status,
                paginated=paginated,
                description=(view.__doc__ or "").strip(),
                tag=self.tag,
                query=query or {},
                secret_fields=tuple(secret_fields),
            )
            self.specs.append(spec)

            @functools.wraps(view)
            def wrapper(**kwargs: Any) -> Response:
                actor = bearer_actor()
                g.actor = actor
                if spec.roles:
                    actor.require(*spec.roles)
                if spec.method == "POST":
                    replay = idempotent_replay(actor)
                    if replay is not None:
                        return replay
                if spec.body is not None:
                    kwargs["body"] = parse_body(spec.body)
                elif spec.method in {"POST", "PUT", "PATCH"} and request.get_data(cache=True):
                    # Even an endpoint without fields refuses a malformed body.
                    parse_body(_Empty)
                result = view(actor, **kwargs)
                code = spec.status
                if isinstance(result, tuple):
                    result, code = result
                response = result if isinstance(result, Response) else json_response(result, code)
                if spec.method == "POST":
                    remember_response(actor, response, secret_fields=spec.secret_fields)
                return response

            self.add_url_rule(rule, view.__name__, wrapper, methods=[spec.method])
            return wrapper

        return decorator


class _Empty(BaseModel):
    model_config = {"extra": "allow"}


# --- Idempotency-Key --------------------------------------------------------


def _request_hash() -> str:
    digest = hashlib.sha256()
    digest.update(request.method.encode())
    digest.update(b"\0")
    digest.update(request.full_path.rstrip("?").encode())
    digest.update(b"\0")
    digest.update(request.get_data(cache=True))
    return digest.hexdigest()


def idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        return None
    if len(key) > 255:
        raise InvalidInput("Idempotency-Key is longer than 255 characters.", field="Idempotency-Key")
    return key


def stored_replay(user_id: int, key: str) -> Response | None:
    record = db.session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key
        )
    )
    if record is None:
        return None
    if record.request_hash != _request_hash():
        # Returned, not raised: the commit point calls this after a failed commit,
        # outside the view, where no error handler would turn an exception into a 409.
        return domain_error_response(
            Conflict(
                "This Idempotency-Key was already used with a different request.",
                field="Idempotency-Key",
                code="idempotency_key_reused",
            )
        )
    response = Response(record.response_body, status=record.status_code, mimetype="application/json")
    response.headers["Idempotent-Replayed"] = "true"
    if record.location:
        response.headers["Location"] = record.location
    return response


def idempotent_replay(actor: Actor) -> Response | None:
    key = idempotency_key()
    if key is None or actor.user_id is None:
        return None
    g.idempotency = (actor.user_id, key)
    return stored_replay(actor.user_id, key)


def remember_response(
    actor: Actor, response: Response, *, secret_fields: tuple[str, ...] = ()
) -> None:
    """Store a successful POST's response in the same transaction as its effect.

    Not flushed here: the commit point inserts it. When a concurrent request
    with the same key committed first, that insert violates the unique key at
    commit, everything of this request is rolled back and the first response
    is replayed (``BuyersClubFlask._after_failed_commit``). Flushing here would
    raise the violation inside the view instead, as a server error.

    ``secret_fields`` are stored as ``null``: a secret shown once is never kept.
    """
    key = idempotency_key()
    if key is None or actor.user_id is None or response.status_code >= 400:
        return
    body = response.get_data(as_text=True)
    if secret_fields:
        data = json.loads(body)
        if isinstance(data, dict):
            data.update({name: None for name in secret_fields if name in data})
            body = json.dumps(data)
    db.session.add(
        IdempotencyRecord(
            user_id=actor.user_id,
            key=key,
            method=request.method,
            path=request.path,
            request_hash=_request_hash(),
            status_code=response.status_code,
            response_body=body,
            location=response.headers.get("Location"),
        )
    )


# --- Pagination -------------------------------------------------------------


def _positive_int(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidInput(f"{name} must be a whole number.", field=name) from exc
    if value < 1:
        raise InvalidInput(f"{name} must be 1 or more.", field=name)
    return value


def paginate(
    statement: Select,
    serialise: Callable[[Any], Any] | None = None,
    *,
    serialise_page: Callable[[list[Any]], list[Any]] | None = None,
) -> dict[str, Any]:
    """Run ``statement`` for the page the query string asks for.

    ``serialise`` turns one item into data; ``serialise_page`` turns the whole
    page at once, for items whose data needs a bulk query (not one per item).
    """
    page = _positive_int("page", 1)
    per_page = _positive_int("per_page", DEFAULT_PER_PAGE)
    if per_page > MAX_PER_PAGE:
        raise InvalidInput(f"per_page must be at most {MAX_PER_PAGE}.", field="per_page")
    total = db.session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    items = db.session.scalars(statement.limit(per_page).offset((page - 1) * per_page)).all()
    serialised = serialise_page(list(items)) if serialise_page else [serialise(item) for item in items]
    return {
        "items": [_jsonable(item) for item in serialised],
        "page": page,
        "pages": max(1, math.ceil(total / per_page)),
        "total": total,
    }


def domain_error_response(error: DomainError) -> Response:
    return error_response(error.status, error.code, error.message, error.field)
