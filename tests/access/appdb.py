"""App-database fixtures shared by tests/access, tests/catalog and tests/web.

`app_db_url` runs a test on SQLite and on PostgreSQL (a fresh schema per test, dropped after);
imported by the conftest of each of those folders.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest

from passerelle.access.accounts import Accounts
from passerelle.access.auth import Principal
from passerelle.access.clock import MovableClock
from passerelle.access.context import Context
from passerelle.access.db import Database, normalize_url
from passerelle.access.enums import OrgType, Role
from passerelle.access.mail import Mail
from passerelle.access.schemas import OrgIn, UserIn
from passerelle.config import Settings
from tests.conftest import missing as _missing

PASSWORD = "correct horse battery"


def postgres_schema_url() -> tuple[str, str, str]:
    """(admin URL, URL of a fresh schema, schema name) or skip."""
    base = os.environ.get("PASSERELLE_TEST_POSTGRES_URL", "")
    if not base:
        _missing("PASSERELLE_TEST_POSTGRES_URL is not set")
    import psycopg

    admin = normalize_url(base.split("?")[0])
    schema = f"a_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(base.split("?")[0], autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError as exc:
        _missing(f"PostgreSQL is unreachable: {str(exc).strip().splitlines()[-1]}")
    url = f"{admin}?options={quote(f'-csearch_path={schema}')}"
    return base.split("?")[0], url, schema


def drop_schema(admin: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(
    params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]
)
def app_db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'passerelle.db'}"
        return
    admin, url, schema = postgres_schema_url()
    yield url
    drop_schema(admin, schema)


@pytest.fixture
def db(app_db_url):
    database = Database(app_db_url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def clock():
    return MovableClock()


class RecordingMailer:
    """Keeps what would be sent (the SMTP path itself is tested with a real SMTP server)."""

    def __init__(self) -> None:
        self.sent: list[Mail] = []

    def send(self, mail: Mail) -> None:
        self.sent.append(mail)


@pytest.fixture
def settings(tmp_path, app_db_url):
    return Settings(data_dir=tmp_path, app_db_url=app_db_url)


@pytest.fixture
def ctx(db, settings, clock):
    return Context(db, settings, clock, RecordingMailer())


@dataclass
class Seed:
    """Three organisations (two hospitals, one biotech), one user per role in each."""

    orgs: dict[str, int] = field(default_factory=dict)
    users: dict[tuple[str, Role], int] = field(default_factory=dict)
    principals: dict[tuple[str, Role], Principal] = field(default_factory=dict)

    def p(self, org: str, role: Role) -> Principal:
        return self.principals[(org, role)]

    def email(self, org: str, role: Role) -> str:
        return f"{role.value}@{org}.example"


ORGS = {"hopa": OrgType.HOSPITAL, "hopb": OrgType.HOSPITAL, "bio": OrgType.BIOTECH}


def seed(ctx: Context) -> Seed:
    accounts = Accounts(ctx)
    s = Seed()
    for key, kind in ORGS.items():
        org = accounts.create_org(None, OrgIn(name=f"Org {key}", type=kind))
        s.orgs[key] = org.id
        for role in Role:
            user = accounts.create_user(
                None,
                org.id,
                UserIn(
                    email=f"{role.value}@{key}.example",
                    name=f"{role.value} {key}",
                    roles=[role],
                ),
            )
            s.users[(key, role)] = user.id
            s.principals[(key, role)] = Principal(
                "user", org.id, kind, frozenset({role}), user_id=user.id
            )
    return s


@pytest.fixture
def seeded(ctx) -> Seed:
    return seed(ctx)


def token_for(ctx, user_id: int) -> str:
    """A bearer token for a seeded user, issued as a login would (without a password)."""
    from passerelle.access.accounts import Accounts

    accounts = Accounts(ctx)
    with ctx.uow.write() as dal:
        return accounts._issue(dal, dal.get_user(user_id), "auth.login").token
