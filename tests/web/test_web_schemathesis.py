"""schemathesis against the OpenAPI schema: no 5xx and no response outside the schema.

Runs in-process (ASGI) on SQLite with a small example budget per operation, authenticated as
a user holding every role (so calls reach the services, not only the permission checks).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from passerelle.access.accounts import Accounts
from passerelle.access.enums import OrgType, Role
from passerelle.access.schemas import OrgIn, UserIn
from passerelle.catalog.schemas import DatasetIn
from passerelle.catalog.service import Catalog
from passerelle.config import Settings
from passerelle.web import create_app

_tmp = Path(tempfile.mkdtemp(prefix="passerelle-schemathesis-"))
app = create_app(Settings(data_dir=_tmp, app_db_url=f"sqlite:///{_tmp / 'p.db'}"))
_ctx = app.state.services.ctx
_org = Accounts(_ctx).create_org(None, OrgIn(name="CHU", type=OrgType.HOSPITAL))
_user = Accounts(_ctx).create_user(
    None, _org.id, UserIn(email="all@chu.example", name="All", roles=list(Role))
)
Catalog(_ctx).create(
    None,
    DatasetIn(title="Stays", description="D", domains=["person"], contact_email="a@b.fr"),
    organisation_id=_org.id,
)


def _token() -> str:
    from tests.fixtures.appdb import token_for

    return token_for(_ctx, _user.id)


TOKEN = _token()
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
CHECKS = (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
)


@schema.exclude(path="/api/v1/auth/logout").parametrize()
@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_schema(case):
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)
