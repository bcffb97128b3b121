"""The REST API end to end: login, one request to two producers, errors as JSON with the
right status, pagination, the audit head."""

from __future__ import annotations

import pytest

from passerelle.access.accounts import Accounts
from passerelle.access.enums import OrgType, Role
from passerelle.access.schemas import OrgIn, UserIn
from tests.fixtures.appdb import token_for

API = "/api/v1"
PASSWORD = "correct horse battery"


@pytest.fixture
def world(client, web_ctx):
    from tests.fixtures.appdb import seed

    seeded = seed(web_ctx)

    def h(org, role):
        return {"Authorization": f"Bearer {token_for(web_ctx, seeded.users[(org, role)])}"}

    return seeded, h


def dataset(client, headers, title):
    body = {
        "title": title,
        "description": "Stays",
        "domains": ["condition_occurrence"],
        "contact_email": "dpo@example.org",
    }
    r = client.post(f"{API}/datasets", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_login_over_http_and_me_and_logout(client, web_ctx):
    acc = Accounts(web_ctx)
    org = acc.create_org(None, OrgIn(name="CHU", type=OrgType.HOSPITAL))
    acc.create_user(
        None, org.id, UserIn(email="a@chu.fr", name="A", password=PASSWORD, roles=[Role.STEWARD])
    )
    r = client.post(f"{API}/auth/login", json={"email": "a@chu.fr", "password": PASSWORD})
    assert r.status_code == 200
    token = r.json()["token"]
    h = {"Authorization": f"Bearer {token}"}
    me = client.get(f"{API}/auth/me", headers=h).json()
    assert me["roles"] == ["steward"] and me["organisation_id"] == org.id
    assert client.post(f"{API}/auth/logout", headers=h).status_code == 204
    r = client.get(f"{API}/auth/me", headers=h)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    bad = client.post(f"{API}/auth/login", json={"email": "a@chu.fr", "password": "wrong!"})
    assert bad.status_code == 401 and "password" in bad.json()["error"]["message"]
    assert token not in bad.text


def test_one_request_two_producers_over_http(client, world):
    _seeded, h = world
    ds_a = dataset(client, h("hopa", Role.STEWARD), "A stays")
    ds_b = dataset(client, h("hopb", Role.STEWARD), "B stays")
    applicant = h("bio", Role.APPLICANT)
    body = {
        "title": "GI bleed",
        "purpose": ["research", "market_access"],
        "gdpr_art6": "6.1.f",
        "gdpr_art9": "9.2.j",
        "methodology": "MR-004",
        "dataset_ids": [ds_a, ds_b],
        "output_type": "aggregates",
        "duration_months": 6,
        "team": [{"name": "Dr A", "role": "PI", "email": "pi@bio.example"}],
    }
    r = client.post(f"{API}/requests", json=body, headers=applicant)
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    r = client.post(f"{API}/requests/{rid}/submit", headers=applicant)
    assert r.json()["status"] == "submitted" and len(r.json()["reviews"]) == 2
    queue = client.get(f"{API}/reviews", headers=h("hopa", Role.REVIEWER)).json()
    assert queue["total"] == 1 and queue["items"][0]["clock"] == "on_time"
    review = queue["items"][0]["id"]
    r = client.post(
        f"{API}/reviews/{review}/decision",
        headers=h("hopa", Role.REVIEWER),
        json={"status": "approved_with_conditions", "conditions": "k >= 11"},
    )
    assert r.status_code == 200 and r.json()["status"] == "active"
    again = client.post(
        f"{API}/reviews/{review}/decision",
        headers=h("hopa", Role.REVIEWER),
        json={"status": "rejected"},
    )
    assert again.status_code == 409 and "approved_with_conditions" in again.text
    listed = client.get(f"{API}/requests", headers=h("hopb", Role.REVIEWER)).json()
    assert [x["id"] for x in listed["items"]] == [rid]
    assert client.get(f"{API}/requests", headers=h("hopa", Role.APPLICANT)).json()["total"] == 0
    audit = client.get(f"{API}/audit/verify", headers=h("bio", Role.AUDITOR)).json()
    head = client.get(f"{API}/audit/head").json()
    assert audit["ok"] and audit["head_hash"] == head["head_hash"] and head["count"] > 5


def test_errors_are_json_with_the_right_status(client, world):
    _seeded, h = world
    steward = h("hopa", Role.STEWARD)
    assert client.get(f"{API}/datasets/999999").status_code == 404
    r = client.post(f"{API}/datasets", json={"title": ""}, headers=steward)
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("title")
    r = client.post(
        f"{API}/requests",
        headers=h("bio", Role.APPLICANT),
        json={"title": "x", "purpose": ["research"], "dataset_ids": [424242]},
    )
    assert r.status_code == 422 and "dataset_ids" in r.json()["error"]["message"]
    r = client.get(f"{API}/datasets?limit=1000")
    assert r.status_code == 422 and "limit" in r.json()["error"]["message"]
    r = client.get(f"{API}/nowhere")
    assert r.status_code == 404 and "error" in r.json()
    r = client.get(f"{API}/auth/me", headers={"Authorization": "Bearer pst_forged"})
    assert r.status_code == 401


def test_pagination(client, world):
    _seeded, h = world
    for i in range(7):
        dataset(client, h("hopa", Role.STEWARD), f"Set {i}")
    page = client.get(f"{API}/datasets?limit=3&offset=3").json()
    assert page["total"] == 7 and len(page["items"]) == 3 and page["offset"] == 3
    orgs = client.get(f"{API}/organisations?limit=2", headers=h("bio", Role.APPLICANT)).json()
    assert orgs["total"] == 3 and len(orgs["items"]) == 2


def test_login_throttling_over_http(client, web_ctx):
    acc = Accounts(web_ctx)
    org = acc.create_org(None, OrgIn(name="Lab", type=OrgType.ACADEMIC_LAB))
    acc.create_user(None, org.id, UserIn(email="l@lab.fr", name="L", password=PASSWORD))
    for _ in range(web_ctx.settings.login_max_failures):
        client.post(f"{API}/auth/login", json={"email": "l@lab.fr", "password": "nope"})
    r = client.post(f"{API}/auth/login", json={"email": "l@lab.fr", "password": PASSWORD})
    assert r.status_code == 429


def test_oidc_is_404_when_not_configured(client):
    r = client.get(f"{API}/auth/oidc/login", follow_redirects=False)
    assert r.status_code == 404 and "not configured" in r.json()["error"]["message"]


def test_dcat_endpoints(client, world):
    _seeded, h = world
    dataset(client, h("hopa", Role.STEWARD), "Stays")
    r = client.get(f"{API}/catalog/dcat.ttl")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/turtle")
    assert "dcat:Dataset" in r.text
    r = client.get(f"{API}/catalog/dcat.jsonld")
    assert r.headers["content-type"].startswith("application/ld+json") and r.json()


def test_openapi_is_versioned_and_documents_errors(client):
    spec = client.get(f"{API}/openapi.json").json()
    assert all(p.startswith("/api/v1/") for p in spec["paths"])
    op = spec["paths"]["/api/v1/requests"]["post"]
    assert {"401", "403", "422"} <= set(op["responses"])
