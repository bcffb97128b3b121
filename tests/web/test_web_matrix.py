"""The authorization matrix: every role (and a node key) x every endpoint x own / other
organisation, plus anonymous callers. Allowed calls never get 401/403; denied calls get 403
(401 when anonymous)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from passerelle.access.accounts import Accounts
from passerelle.access.enums import Role
from passerelle.access.requests import Requests
from passerelle.access.schemas import ApiKeyIn, RequestIn
from passerelle.catalog.schemas import DatasetIn
from passerelle.catalog.service import Catalog
from tests.fixtures.appdb import token_for

ORG_KEYS = ("hopa", "hopb", "bio")
ROLES = (*Role, "node")
ANY = "any-authenticated"
PUBLIC = "public"
counter = itertools.count()


def dataset_body() -> dict[str, Any]:
    return {"title": "T", "description": "D", "domains": ["person"], "contact_email": "a@b.fr"}


def request_body(world) -> dict[str, Any]:
    return {
        "title": "R",
        "purpose": ["research"],
        "gdpr_art6": "6.1.e",
        "gdpr_art9": "9.2.j",
        "dataset_ids": [world["ds_a"], world["ds_b"]],
    }


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # may name world keys in braces
    rule: Any  # PUBLIC, ANY, or a callable (org_key, role, world) -> bool
    body: Callable[[dict], Any] | None = None


def roles_in(org: str, *roles: Any):
    return lambda o, r, w: o == org and r in roles


def roles_anywhere(*roles: Any):
    return lambda o, r, w: r in roles


def read_submitted(o, r, w):
    if o == "bio":
        return r in (Role.APPLICANT, Role.ADMIN, Role.AUDITOR)
    return r in ("node", Role.REVIEWER, Role.STEWARD, Role.ADMIN, Role.AUDITOR)


ENDPOINTS = [
    Endpoint("GET", "/auth/me", ANY),
    Endpoint("POST", "/auth/logout", roles_anywhere(*Role)),  # a node key is not a session
    Endpoint("GET", "/organisations", ANY),
    Endpoint(
        "POST",
        "/organisations",
        roles_anywhere(Role.ADMIN),
        lambda w: {"name": f"New org {next(counter)}", "type": "medtech"},
    ),
    Endpoint("GET", "/organisations/{hopa}", ANY),
    Endpoint(
        "PATCH",
        "/organisations/{hopa}",
        roles_in("hopa", Role.ADMIN, Role.STEWARD),
        lambda w: {"review_days": 45},
    ),
    Endpoint("GET", "/organisations/{hopa}/users", roles_in("hopa", Role.ADMIN)),
    Endpoint(
        "POST",
        "/organisations/{hopa}/users",
        roles_in("hopa", Role.ADMIN),
        lambda w: {"email": f"u{next(counter)}@hopa.example", "name": "U"},
    ),
    Endpoint(
        "GET",
        "/users/{hopa_reviewer}",
        lambda o, r, w: o == "hopa" and r in (Role.ADMIN, Role.REVIEWER),
    ),
    Endpoint(
        "PATCH",
        "/users/{hopa_reviewer}",
        roles_in("hopa", Role.ADMIN),
        lambda w: {"name": "Renamed"},
    ),
    Endpoint("GET", "/organisations/{hopa}/api-keys", roles_in("hopa", Role.ADMIN)),
    Endpoint(
        "POST",
        "/organisations/{hopa}/api-keys",
        roles_in("hopa", Role.ADMIN),
        lambda w: {"name": "node"},
    ),
    Endpoint("DELETE", "/api-keys/{spare_key}", roles_in("hopa", Role.ADMIN)),
    Endpoint("GET", "/datasets", PUBLIC),
    Endpoint("POST", "/datasets", roles_anywhere(Role.STEWARD), lambda w: dataset_body()),
    Endpoint("GET", "/datasets/{ds_a}", PUBLIC),
    Endpoint("PUT", "/datasets/{ds_a}", roles_in("hopa", Role.STEWARD), lambda w: dataset_body()),
    Endpoint("POST", "/datasets/{ds_a}/profile", roles_in("hopa", Role.STEWARD)),
    Endpoint("GET", "/catalog/dcat.jsonld", PUBLIC),
    Endpoint("GET", "/catalog/dcat.ttl", PUBLIC),
    Endpoint("GET", "/requests", ANY),
    Endpoint("POST", "/requests", roles_anywhere(Role.APPLICANT), request_body),
    Endpoint("GET", "/requests/{submitted}", read_submitted),
    Endpoint(
        "GET",
        "/requests/{draft}",
        lambda o, r, w: o == "bio" and r in (Role.APPLICANT, Role.ADMIN, Role.AUDITOR),
    ),
    Endpoint("PUT", "/requests/{draft}", roles_in("bio", Role.APPLICANT), request_body),
    Endpoint("POST", "/requests/{draft}/submit", roles_in("bio", Role.APPLICANT)),
    Endpoint("POST", "/requests/{draft2}/close", roles_in("bio", Role.APPLICANT, Role.ADMIN)),
    Endpoint("GET", "/reviews", roles_anywhere(Role.REVIEWER)),
    Endpoint(
        "POST",
        "/reviews/{review_a}/decision",
        roles_in("hopa", Role.REVIEWER),
        lambda w: {"status": "changes_requested"},
    ),
    Endpoint(
        "POST",
        "/reviews/{review_a}/extension",
        roles_in("hopa", Role.REVIEWER),
        lambda w: {"days": 10, "reason": "committee"},
    ),
    Endpoint("POST", "/reviews/{review_b}/resubmit", roles_in("bio", Role.APPLICANT)),
    Endpoint("POST", "/deadlines/tick", roles_anywhere(Role.ADMIN)),
    Endpoint("GET", "/audit/head", PUBLIC),
    Endpoint("GET", "/audit", roles_anywhere(Role.AUDITOR)),
    Endpoint("GET", "/audit/verify", roles_anywhere(Role.AUDITOR)),
    Endpoint("GET", "/nodes/me/decisions", roles_anywhere("node")),  # scoped to the key's org
]


def test_the_matrix_names_every_route(app):
    routes = {
        (m.upper(), path.removeprefix("/api/v1"))
        for path, ops in app.openapi()["paths"].items()
        for m in ops
    }
    login_routes = {
        ("POST", "/auth/login"),
        ("GET", "/auth/oidc/login"),
        ("GET", "/auth/oidc/callback"),
    }  # public: tested in test_web_api.py
    import re

    named = {(e.method, re.sub(r"\{[a-z_0-9]+\}", "{}", e.path)) for e in ENDPOINTS}
    actual = {(m, re.sub(r"\{[a-z_0-9]+\}", "{}", p)) for m, p in routes - login_routes}
    assert actual == named


def world(ctx, seeded) -> dict[str, Any]:
    steward_a, steward_b = seeded.p("hopa", Role.STEWARD), seeded.p("hopb", Role.STEWARD)
    body = DatasetIn(**dataset_body())
    ds_a = Catalog(ctx).create(steward_a, body).id
    ds_b = Catalog(ctx).create(steward_b, body).id
    w = {
        "hopa": seeded.orgs["hopa"],
        "ds_a": ds_a,
        "ds_b": ds_b,
        "hopa_reviewer": seeded.users[("hopa", Role.REVIEWER)],
    }
    svc = Requests(ctx)
    applicant = seeded.p("bio", Role.APPLICANT)
    req = RequestIn(**request_body(w))
    submitted = svc.submit(applicant, svc.create(applicant, req).id)
    w["submitted"] = submitted.id
    w["review_a"] = next(r.id for r in submitted.reviews if r.producer_id == w["hopa"])
    w["review_b"] = next(r.id for r in submitted.reviews if r.producer_id != w["hopa"])
    w["draft"] = svc.create(applicant, req).id
    w["draft2"] = svc.create(applicant, req).id
    w["spare_key"] = Accounts(ctx).create_api_key(None, w["hopa"], ApiKeyIn(name="spare")).id
    return w


def credentials(ctx, seeded, org: str, role: Any) -> dict[str, str]:
    if role == "node":
        key = Accounts(ctx).create_api_key(None, seeded.orgs[org], ApiKeyIn(name="n")).key
        return {"X-API-Key": key}
    return {"Authorization": f"Bearer {token_for(ctx, seeded.users[(org, role)])}"}


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_authorization_matrix(endpoint, client, web_ctx, app_db_url):
    if not app_db_url.startswith("sqlite"):
        pytest.skip("authorization does not depend on the database (run on SQLite)")
    from tests.fixtures.appdb import seed

    seeded = seed(web_ctx)
    w = world(web_ctx, seeded)
    path = "/api/v1" + endpoint.path.format(**w)

    def call(headers):
        body = endpoint.body(w) if endpoint.body else None
        return client.request(endpoint.method, path, headers=headers, json=body)

    anonymous = call({})
    if endpoint.rule == PUBLIC:
        assert anonymous.status_code < 400, anonymous.text
    else:
        assert anonymous.status_code == 401, anonymous.text
        assert anonymous.json()["error"]["message"]
    failures = []
    for org, role in itertools.product(ORG_KEYS, ROLES):
        resp = call(credentials(web_ctx, seeded, org, role))
        allowed = endpoint.rule in (PUBLIC, ANY) or endpoint.rule(org, role, w)
        if allowed and resp.status_code in (401, 403):
            failures.append(f"{org}/{role}: expected allowed, got {resp.status_code} {resp.text}")
        if not allowed and resp.status_code != 403:
            failures.append(f"{org}/{role}: expected 403, got {resp.status_code} {resp.text}")
        if resp.status_code >= 500:
            failures.append(f"{org}/{role}: {resp.status_code}")
        if resp.status_code >= 400:
            assert set(resp.json()) == {"error"}
    assert not failures, "\n".join(failures)
