"""Fictional demo data: a club to click through after ``make run``.

Every organisation, person and address here is made up, and nothing describes
the people the programmes serve. Loading is idempotent: each record is looked
up by its natural key first, so a second run changes nothing and says so.

The demo accounts share one published password, which is why the ``demo``
command refuses to run in production mode unless forced.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from buyersclub.accounts.models import Role, User
from buyersclub.accounts.services import create_user, user_by_email
from buyersclub.actor import Actor
from buyersclub.audit.services import record, snapshot
from buyersclub.db import db, utcnow
from buyersclub.organisations.models import (
    BudgetBand,
    DocumentKind,
    MembershipStatus,
    Organisation,
    OrganisationDocument,
    OrganisationKind,
    PeopleReachedBand,
)
from orders.models import PriceBreak, Product, ProductCategory, ProductRestriction, Round, Supplier

DEMO_PASSWORD = "demo-club-password"
ADMIN_EMAIL = "admin@example.org"
FINANCE_EMAIL = "finance@example.org"
# The member account `make run` suggests signing in with.
MEMBER_EMAIL = "staff@harbour-lights.example.org"


@dataclass(frozen=True)
class DemoDocument:
    kind: DocumentKind
    reference: str
    expires_in_days: int  # from the day the demo is loaded; negative: already expired


@dataclass(frozen=True)
class DemoOrganisation:
    slug: str
    name: str
    kind: OrganisationKind
    country: str
    region: str
    city: str
    postal_code: str
    street: str
    budget: BudgetBand
    reached: PeopleReachedBand
    staff_name: str
    public_funding: bool = False
    private_funding: bool = False
    status: MembershipStatus = MembershipStatus.APPROVED
    # Need assessment: a decile (1 = most deprived) marks a low-resource programme.
    low_resource_decile: int | None = None
    assessment_reason: str | None = None
    accepts_short_dated: bool = False
    tax_exempt_certificate: str | None = None
    documents: tuple[DemoDocument, ...] = field(default_factory=tuple)

    @property
    def staff_email(self) -> str:
        return f"staff@{self.slug}.example.org"


P = DocumentKind.PRESCRIBER_ORDER
PIPES = DocumentKind.PIPE_AUTHORISATION
O2 = DocumentKind.OXYGEN_TRAINING
K = OrganisationKind
B = BudgetBand
R = PeopleReachedBand

ORGANISATIONS: tuple[DemoOrganisation, ...] = (
    DemoOrganisation(
        "harbour-lights", "Harbour Lights Outreach", K.OUTREACH, "US", "MA", "Boston", "02110",
        "14 Wharf Lane", B.UNDER_50K, R.FROM_100_TO_500, "Morgan Ellis",
        private_funding=True, low_resource_decile=2,
        assessment_reason="Volunteer-run, no public funding, budget under 50,000.",
        accepts_short_dated=True,
        documents=(DemoDocument(PIPES, "MA-PIPE-2291", 300), DemoDocument(P, "SO-HL-0042", 12)),
    ),
    DemoOrganisation(
        "riverbend", "Riverbend Syringe Services", K.SYRINGE_SERVICES, "US", "NY", "Albany",
        "12207", "220 Mill Street", B.FROM_250K_TO_1M, R.FROM_500_TO_2000, "Priya Natarajan",
        public_funding=True, private_funding=True, tax_exempt_certificate="NY-EX-553120",
        documents=(DemoDocument(P, "SO-RB-1187", 240), DemoDocument(O2, "O2-RB-77", 180)),
    ),
    DemoOrganisation(
        "prairie-mutual-aid", "Prairie Mutual Aid Collective", K.MUTUAL_AID, "US", "NM",
        "Albuquerque", "87102", "9 Cottonwood Road", B.UNDER_50K, R.UNDER_100, "Dana Whitehorse",
        low_resource_decile=1, assessment_reason="No paid staff and no grant income.",
        accepts_short_dated=True,
        documents=(DemoDocument(PIPES, "NM-PIPE-0113", -20),),
    ),
    DemoOrganisation(
        "cascade-union", "Cascade Drug Users' Union", K.DRUG_USERS_UNION, "US", "WA", "Tacoma",
        "98402", "301 Pacific Avenue", B.FROM_50K_TO_250K, R.FROM_100_TO_500, "Lee Okafor",
        private_funding=True, low_resource_decile=3,
        assessment_reason="Small private grants only; serves a rural county as well.",
        documents=(DemoDocument(PIPES, "WA-PIPE-7730", 21), DemoDocument(O2, "O2-CU-12", 330)),
    ),
    DemoOrganisation(
        "golden-hills", "Golden Hills Community Health Centre", K.HEALTH_CENTRE, "US", "CA",
        "Oakland", "94612", "1500 Broadway", B.OVER_1M, R.OVER_2000, "Avery Chen",
        public_funding=True, private_funding=True, tax_exempt_certificate="CA-EX-880214",
        documents=(DemoDocument(P, "SO-GH-3301", 365), DemoDocument(O2, "O2-GH-05", 200)),
    ),
    DemoOrganisation(
        "keystone", "Keystone Harm Reduction", K.SYRINGE_SERVICES, "US", "PA", "Pittsburgh",
        "15222", "77 Liberty Avenue", B.FROM_50K_TO_250K, R.FROM_500_TO_2000, "Sam Kowalski",
        public_funding=True,
        documents=(DemoDocument(PIPES, "PA-PIPE-4410", 150), DemoDocument(P, "SO-KH-0907", 90)),
    ),
    DemoOrganisation(
        "lakeshore", "Lakeshore Outreach Network", K.OUTREACH, "CA", "ON", "Toronto", "M5V 2T6",
        "48 Front Street West", B.FROM_250K_TO_1M, R.FROM_500_TO_2000, "Jordan Tremblay",
        public_funding=True,
        documents=(DemoDocument(P, "ON-SO-2024-18", 270),),
    ),
    DemoOrganisation(
        "north-shore-peers", "North Shore Peer Support", K.MUTUAL_AID, "CA", "ON", "Sudbury",
        "P3E 1A1", "12 Elm Street", B.UNDER_50K, R.UNDER_100, "Casey Lafleur",
        low_resource_decile=2, assessment_reason="Peer-run, no core funding.",
        documents=(DemoDocument(P, "ON-SO-2024-31", 25),),
    ),
    DemoOrganisation(
        "bayou-alliance", "Bayou Harm Reduction Alliance", K.OUTREACH, "US", "LA", "New Orleans",
        "70112", "610 Canal Street", B.UNDER_50K, R.FROM_100_TO_500, "Remy Batiste",
        private_funding=True, low_resource_decile=2,
        assessment_reason="Budget under 50,000; lost its county contract this year.",
        documents=(DemoDocument(PIPES, "LA-PIPE-0560", 200),),
    ),
    DemoOrganisation(
        "desert-bloom", "Desert Bloom Syringe Access", K.SYRINGE_SERVICES, "US", "AZ", "Tucson",
        "85701", "33 Congress Street", B.FROM_50K_TO_250K, R.FROM_100_TO_500, "Alex Moreno",
        public_funding=True,
        documents=(DemoDocument(P, "SO-DB-2210", 120), DemoDocument(O2, "O2-DB-31", 9)),
    ),
    DemoOrganisation(
        "gulf-coast", "Gulf Coast Outreach", K.OUTREACH, "US", "TX", "Houston", "77002",
        "900 Main Street", B.FROM_50K_TO_250K, R.FROM_500_TO_2000, "Robin Delgado",
        private_funding=True,
        documents=(DemoDocument(P, "SO-GC-6015", 210),),
    ),
    DemoOrganisation(
        "green-mountain", "Green Mountain Mutual Aid", K.MUTUAL_AID, "US", "VT", "Burlington",
        "05401", "5 Church Street", B.UNDER_50K, R.UNDER_100, "Taylor Brooks",
        status=MembershipStatus.APPLIED,
    ),
    DemoOrganisation(
        "twin-rivers", "Twin Rivers Peer Collective", K.DRUG_USERS_UNION, "US", "OR", "Portland",
        "97204", "401 Water Avenue", B.UNDER_50K, R.FROM_100_TO_500, "Quinn Harper",
        status=MembershipStatus.APPLIED,
    ),
)


@dataclass(frozen=True)
class DemoProduct:
    sku: str
    name: str
    category: ProductCategory
    unit: str
    pack_size: int
    price_breaks: tuple[tuple[int, str], ...]  # (from units, unit cost)
    required_document: DocumentKind | None = None
    lot_tracked: bool = False
    description: str | None = None
    # (country, region, note): jurisdictions the product may not be shipped to.
    restrictions: tuple[tuple[str, str | None, str], ...] = ()


SUPPLIER_NAME = "Northstar Harm Reduction Supply"
PRODUCTS: tuple[DemoProduct, ...] = (
    DemoProduct(
        "PIPE-BORO-100", "Borosilicate safer-smoking pipe", ProductCategory.PIPES, "pipe", 100,
        ((1, "1.20"), (1000, "0.95"), (5000, "0.78")),
        required_document=PIPES,
        description="Heat-resistant glass stem with mouthpiece; sold in cases of 100.",
        restrictions=(("US", "TX", "Demo rule: pipe distribution is not authorised here."),),
    ),
    # The SPEC's worked example, to the cent.
    DemoProduct(
        "NLX-NASAL-4MG", "Naloxone nasal spray 4 mg", ProductCategory.NALOXONE,
        "box of two 4 mg doses", 24, ((1, "45.00"), (240, "38.00"), (960, "31.00")),
        lot_tracked=True,
        description="Two single-use 4 mg nasal sprays per box; cases of 24 boxes.",
    ),
    DemoProduct(
        "NLX-INJ-04", "Naloxone injection 0.4 mg/mL, 1 mL vial", ProductCategory.NALOXONE, "vial",
        25, ((1, "14.00"), (250, "11.50"), (1000, "9.75")),
        required_document=P, lot_tracked=True,
        description="Needs a prescriber or standing order on file.",
    ),
    DemoProduct(
        "O2-CYL-D", "Medical oxygen, D cylinder", ProductCategory.OXYGEN, "cylinder", 6,
        ((1, "65.00"), (24, "58.00"), (96, "52.50")),
        required_document=O2,
        description="Needs an oxygen training attestation on file.",
    ),
)


def database_is_empty() -> bool:
    """True when there is neither an account nor an organisation yet."""
    users = db.session.scalar(select(func.count()).select_from(User))
    organisations = db.session.scalar(select(func.count()).select_from(Organisation))
    return not users and not organisations


def demo_is_loaded() -> bool:
    return user_by_email(ADMIN_EMAIL) is not None


def sign_in_lines() -> list[str]:
    """How to sign in to the demo, for `make run` to print."""
    return [
        f"Demo sign-ins (password for every account: {DEMO_PASSWORD}):",
        f"  admin    {ADMIN_EMAIL}",
        f"  finance  {FINANCE_EMAIL}",
        f"  member   {MEMBER_EMAIL}",
    ]


def load_demo(actor: Actor) -> Iterator[str]:
    """Create whatever part of the demo data is missing, saying what it does."""
    created = 0
    today = utcnow().date()

    admin = user_by_email(ADMIN_EMAIL)
    if admin is None:
        admin = create_user(actor, email=ADMIN_EMAIL, name="Robin Administrator",
                            password=DEMO_PASSWORD, roles=(Role.ADMIN,))
        created += 1
        yield f"Created the club administrator {ADMIN_EMAIL}."
    if user_by_email(FINANCE_EMAIL) is None:
        create_user(actor, email=FINANCE_EMAIL, name="Frankie Finance",
                    password=DEMO_PASSWORD, roles=(Role.FINANCE,))
        created += 1
        yield f"Created the finance account {FINANCE_EMAIL}."

    for spec in ORGANISATIONS:
        organisation = db.session.scalar(select(Organisation).where(Organisation.name == spec.name))
        if organisation is None:
            organisation = _create_organisation(actor, spec, admin)
            created += 1
            yield (f"Created the organisation {spec.name} ({spec.region}, {spec.country}), "
                   f"{spec.status.value}.")
        for document in spec.documents:
            if _add_document(actor, organisation, document, today):
                created += 1
        if user_by_email(spec.staff_email) is None:
            create_user(actor, email=spec.staff_email, name=spec.staff_name,
                        password=DEMO_PASSWORD, roles=(Role.MEMBER,),
                        organisation_id=organisation.id)
            created += 1
            yield f"Created the staff account {spec.staff_email}."

    supplier = db.session.scalar(select(Supplier).where(Supplier.name == SUPPLIER_NAME))
    if supplier is None:
        supplier = Supplier(name=SUPPLIER_NAME, contact_name="Order desk",
                            contact_email="orders@northstar-supply.example.com",
                            address="1 Depot Road, Springfield, MA 01103, USA")
        db.session.add(supplier)
        db.session.flush()
        record(actor, "supplier.create", "supplier", supplier.id, after=snapshot(supplier))
        created += 1
        yield f"Created the supplier {SUPPLIER_NAME}."
    for spec in PRODUCTS:
        exists = db.session.scalar(
            select(Product).where(Product.supplier_id == supplier.id, Product.sku == spec.sku)
        )
        if exists is None:
            _create_product(actor, supplier, spec)
            created += 1
            yield f"Created the product {spec.name} ({spec.pack_size} per case)."

    for line in _open_demo_round(actor, supplier):
        created += 1
        yield line

    if created:
        yield f"Demo data loaded: {created} records created."
    else:
        yield "Demo data is already loaded: nothing changed."


DEMO_ROUND = "Winter naloxone"
# The SPEC's worked example: who commits how many boxes (and tolerance) in the open round.
DEMO_COMMITMENTS = (
    ("Riverbend Syringe Services", 480, 0),
    ("Keystone Harm Reduction", 300, 0),
    ("Harbour Lights Outreach", 96, 24),
    ("Prairie Mutual Aid Collective", 48, 0),
)


def _open_demo_round(actor: Actor, supplier: Supplier) -> Iterator[str]:
    """An open round of nasal naloxone with the worked example's commitments, through the services."""
    from orders.services import commitments, rounds

    if db.session.scalar(select(func.count()).select_from(Round).where(Round.name == DEMO_ROUND)):
        return
    naloxone = db.session.scalar(
        select(Product).where(Product.supplier_id == supplier.id, Product.sku == "NLX-NASAL-4MG"))
    found = rounds.create_round(
        actor, supplier_id=supplier.id, name=DEMO_ROUND,
        deadline=utcnow().replace(microsecond=0) + timedelta(days=14),
        items=[{"product_id": naloxone.id, "club_price": "40.00"}],
    )
    rounds.open_round(actor, found.id)
    yield f"Opened the round {DEMO_ROUND}, closing in two weeks."
    for name, quantity, tolerance in DEMO_COMMITMENTS:
        organisation = db.session.scalar(select(Organisation).where(Organisation.name == name))
        commitments.set_commitment(actor, found.id, naloxone.id, quantity=quantity, tolerance=tolerance,
                                   organisation_id=organisation.id)
        extra = f" (+{tolerance} tolerance)" if tolerance else ""
        yield f"  {name} committed to {quantity} boxes{extra}."


def _create_organisation(actor: Actor, spec: DemoOrganisation, admin: User) -> Organisation:
    now = utcnow()
    approved = spec.status == MembershipStatus.APPROVED
    assessed = approved and spec.low_resource_decile is not None
    organisation = Organisation(
        name=spec.name,
        kind=spec.kind,
        status=spec.status,
        decided_at=now if approved else None,
        decided_by_id=admin.id if approved else None,
        country=spec.country,
        region=spec.region,
        site_address_line1=spec.street,
        site_city=spec.city,
        site_postal_code=spec.postal_code,
        site_is_not_a_home=True,
        tax_exempt_certificate=spec.tax_exempt_certificate,
        budget_band=spec.budget,
        people_reached_band=spec.reached,
        receives_public_funding=spec.public_funding,
        receives_private_funding=spec.private_funding,
        accepts_short_dated=spec.accepts_short_dated,
        low_resource=assessed,
        assessment_reason=spec.assessment_reason if assessed else None,
        deprivation_decile=spec.low_resource_decile if assessed else None,
        assessed_at=now if assessed else None,
        assessed_by_id=admin.id if assessed else None,
    )
    db.session.add(organisation)
    db.session.flush()
    record(actor, "organisation.create", "organisation", organisation.id,
           after=snapshot(organisation), organisation_id=organisation.id)
    return organisation


def _add_document(actor: Actor, organisation: Organisation, spec: DemoDocument, today: date) -> bool:
    exists = db.session.scalar(
        select(OrganisationDocument.id).where(
            OrganisationDocument.organisation_id == organisation.id,
            OrganisationDocument.kind == spec.kind,
            OrganisationDocument.reference == spec.reference,
        )
    )
    if exists is not None:
        return False
    document = OrganisationDocument(
        organisation_id=organisation.id,
        kind=spec.kind,
        reference=spec.reference,
        expires_on=today + timedelta(days=spec.expires_in_days),
        recorded_at=utcnow(),
    )
    db.session.add(document)
    db.session.flush()
    record(actor, "organisation_document.add", "organisation_document", document.id,
           after=snapshot(document), organisation_id=organisation.id)
    db.session.expire(organisation, ["documents"])
    return True


def _create_product(actor: Actor, supplier: Supplier, spec: DemoProduct) -> Product:
    product = Product(
        supplier_id=supplier.id,
        sku=spec.sku,
        name=spec.name,
        category=spec.category,
        unit=spec.unit,
        pack_size=spec.pack_size,
        required_document=spec.required_document,
        lot_tracked=spec.lot_tracked,
        description=spec.description,
    )
    product.price_breaks = [
        PriceBreak(min_units=units, unit_cost=Decimal(cost)) for units, cost in spec.price_breaks
    ]
    product.restrictions = [
        ProductRestriction(country=country, region=region, note=note)
        for country, region, note in spec.restrictions
    ]
    db.session.add(product)
    db.session.flush()
    record(
        actor, "product.create", "product", product.id,
        after={
            **snapshot(product),
            "price_breaks": [
                {"min_units": pb.min_units, "unit_cost": pb.unit_cost} for pb in product.price_breaks
            ],
            "restrictions": [
                {"country": r.country, "region": r.region} for r in product.restrictions
            ],
        },
    )
    return product
