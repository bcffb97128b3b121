"""The single window's demo content: organisations of every actor type, one user per role,
the three hospitals' datasets (with their disclosure-controlled profiles), and accounts that
the demo prints. Everything goes through the access and catalogue service layers, so every
row has its audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from passerelle.access.accounts import Accounts
from passerelle.access.auth import Principal
from passerelle.access.context import Context
from passerelle.access.enums import Domain, OrgType, Role, UpdateFrequency
from passerelle.access.schemas import OrgIn, UserIn
from passerelle.catalog.schemas import DatasetIn
from passerelle.catalog.service import Catalog
from passerelle.demo.fhir import HOSPITALS, Hospital

DEMO_PASSWORD = "passerelle-demo"  # the published demo password (printed)
EMAIL_DOMAIN = "demo.passerelle.test"

# Applicant organisations, one or more per actor type (the hospitals are producers and, for
# the history, also applicants of the health-establishment type).
APPLICANTS: tuple[tuple[str, OrgType, str], ...] = (
    ("CH de Valenciennes", OrgType.HOSPITAL, "ch-valenciennes"),
    ("Laboratoire d'épidémiologie Paris-Cité", OrgType.ACADEMIC_LAB, "epi-paris"),
    ("GenOmix Bio", OrgType.BIOTECH, "genomix"),
    ("CardioSense Medtech", OrgType.MEDTECH, "cardiosense"),
    ("Pharmalys France", OrgType.PHARMA, "pharmalys"),
    ("Santé Numérique SAS", OrgType.DIGITAL_HEALTH, "sante-numerique"),
    ("Agence régionale de santé Hauts-de-France", OrgType.PUBLIC_BODY, "ars-hdf"),
    ("Association France Diabète Nord", OrgType.PATIENT_ASSOCIATION, "afd-nord"),
    ("Cabinet Conseil Données Santé", OrgType.OTHER, "conseil-sante"),
)
OPERATOR = ("Passerelle (opérateur)", OrgType.OTHER, "operateur")
REVIEW_DAYS = {"chu-nord": 60, "chu-sud": 45, "chu-ouest": 60}


@dataclass(frozen=True)
class Login:
    role: str
    organisation: str
    email: str
    password: str = DEMO_PASSWORD


@dataclass
class Seeded:
    """Ids of what was seeded, and principals to act as (the history uses them)."""

    orgs: dict[str, int] = field(default_factory=dict)  # key -> organisation id
    org_types: dict[str, OrgType] = field(default_factory=dict)
    principals: dict[tuple[str, Role], Principal] = field(default_factory=dict)
    datasets: dict[str, int] = field(default_factory=dict)  # hospital node -> dataset id
    logins: list[Login] = field(default_factory=list)

    def principal(self, key: str, role: Role) -> Principal:
        return self.principals[(key, role)]


def email_of(key: str, role: Role) -> str:
    """The login of the demo user with `role` in the organisation `key`."""
    return f"{role.value}.{key}@{EMAIL_DOMAIN}"


def _user(ctx: Context, seeded: Seeded, key: str, org_name: str, role: Role, label: str) -> None:
    email = email_of(key, role)
    out = Accounts(ctx).create_user(
        None,
        seeded.orgs[key],
        UserIn(email=email, name=f"{label} ({org_name})", password=DEMO_PASSWORD, roles=[role]),
    )
    seeded.principals[(key, role)] = Principal(
        "user", seeded.orgs[key], seeded.org_types[key], frozenset({role}), user_id=out.id
    )
    seeded.logins.append(Login(role.value, org_name, email))


def _org(ctx: Context, seeded: Seeded, key: str, name: str, kind: OrgType) -> None:
    out = Accounts(ctx).create_org(
        None, OrgIn(name=name, type=kind, review_days=REVIEW_DAYS.get(key))
    )
    seeded.orgs[key], seeded.org_types[key] = out.id, kind


def seed_accounts(ctx: Context) -> Seeded:
    seeded = Seeded()
    for h in HOSPITALS:
        _org(ctx, seeded, h.node, h.name, OrgType.HOSPITAL)
    for name, kind, key in (*APPLICANTS, OPERATOR):
        _org(ctx, seeded, key, name, kind)
    op_name = OPERATOR[0]
    _user(ctx, seeded, OPERATOR[2], op_name, Role.ADMIN, "Administratrice")
    _user(ctx, seeded, OPERATOR[2], op_name, Role.AUDITOR, "Auditeur")
    for h in HOSPITALS:
        _user(ctx, seeded, h.node, h.name, Role.STEWARD, "Responsable des données")
        _user(ctx, seeded, h.node, h.name, Role.REVIEWER, "Comité d'accès")
        _user(ctx, seeded, h.node, h.name, Role.APPLICANT, "Chercheuse")
    for name, _kind, key in APPLICANTS:
        _user(ctx, seeded, key, name, Role.APPLICANT, "Demandeur")
    return seeded


def dataset_in(h: Hospital, start_year: int, end_year: int) -> DatasetIn:
    return DatasetIn(
        title=f"Entrepôt de données de santé du {h.name} (OMOP CDM v5.4)",
        description=(
            f"Dossiers patients informatisés du {h.name} ({h.city}) : séjours, diagnostics, "
            "prescriptions, résultats de biologie, constantes, actes et vaccinations, "
            "standardisés au format OMOP CDM v5.4. Données synthétiques de démonstration."
        ),
        domains=[
            Domain.PERSON,
            Domain.OBSERVATION_PERIOD,
            Domain.VISIT,
            Domain.CONDITION,
            Domain.DRUG,
            Domain.PROCEDURE,
            Domain.MEASUREMENT,
            Domain.OBSERVATION,
            Domain.DEATH,
        ],
        period_start=date(start_year, 1, 1),
        period_end=date(end_year, 12, 31),
        population=f"Patients adultes et enfants pris en charge au {h.name} et dans sa région.",
        update_frequency=UpdateFrequency.MONTHLY,
        legal_basis="RGPD art. 6.1.e et 9.2.j ; méthodologies de référence CNIL MR-004",
        access_conditions=(
            "Agrégats soumis au contrôle de divulgation du nœud ; extraits pseudonymisés sur "
            "décision du comité."
        ),
        keywords=["diabète", "hypertension", "AINS", "hémorragie digestive", "cardiologie"],
        contact_name=f"Entrepôt de données du {h.name}",
        contact_email=f"eds@{h.node}.{EMAIL_DOMAIN}",
        health_categories=["EHR"],
        health_themes=["cardiology", "diabetes", "gastroenterology"],
    )


def seed_catalogue(
    ctx: Context,
    seeded: Seeded,
    store_urls: dict[str, str],
    start_year: int,
    end_year: int,
) -> None:
    """One dataset per hospital, created by its steward; profiled from the store when
    `store_urls` names it (see `profile_datasets`)."""
    catalog = Catalog(ctx)
    for h in HOSPITALS:
        steward = seeded.principal(h.node, Role.STEWARD)
        out = catalog.create(steward, dataset_in(h, start_year, end_year))
        seeded.datasets[h.node] = out.id
    profile_datasets(ctx, seeded, store_urls)


def profile_datasets(ctx: Context, seeded: Seeded, store_urls: dict[str, str]) -> None:
    """Each hospital's steward profiles its dataset from its store through the catalogue
    service (the profile passes the disclosure control before it is stored)."""
    catalog = Catalog(ctx)
    for node, url in store_urls.items():
        catalog.profile_from_store(seeded.principal(node, Role.STEWARD), seeded.datasets[node], url)
