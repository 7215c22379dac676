"""A test-only application with one small endpoint, to test the API conventions by themselves."""

from __future__ import annotations

import threading

import pytest
from pydantic import BaseModel, ConfigDict, Field

from buyersclub.accounts.models import Role
from buyersclub.api.core import ApiBlueprint
from buyersclub.audit.services import record
from buyersclub.db import db
from tests.conftest import make_app

parcels = ApiBlueprint("conventions_test_api", __name__, tag="test")

# Set by the concurrency test: both requests meet here after their replay
# check and before either commits, so the race is certain rather than likely.
meeting_point: list[threading.Barrier] = []


class ParcelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    quantity: int = Field(ge=1)


class ParcelOut(BaseModel):
    id: int
    name: str
    quantity: int


@parcels.endpoint("/test/parcels", "POST", summary="Pack a parcel (test only)",
                  roles=(Role.ADMIN,), body=ParcelIn, response=ParcelOut, status=201)
def pack_parcel(actor, body: ParcelIn) -> ParcelOut:
    """Records one audit event per parcel, so tests can count how often the work was done."""
    event = record(actor, "test.parcel_packed", "parcel", None,
                   after={"name": body.name, "quantity": body.quantity})
    if meeting_point:
        meeting_point[0].wait(timeout=10)
    return ParcelOut(id=event.id, name=body.name, quantity=body.quantity)


@pytest.fixture(scope="session")
def conventions_app(app, database_url, tmp_path_factory):
    """The full application plus the test-only blueprint (registered before any request)."""
    test_app = make_app(database_url, tmp_path_factory.mktemp("conventions"))
    test_app.register_blueprint(parcels)
    yield test_app
    with test_app.app_context():
        db.engine.dispose()  # close what threads opened in its pool


@pytest.fixture
def api(conventions_app, session):
    """A client of the test-only application, inside the test's rolled-back transaction."""
    return conventions_app.test_client()
