"""GET /api/v1/nodes/me/decisions: a node key reads its own organisation's decided reviews."""

from __future__ import annotations

from passerelle.access.accounts import Accounts
from passerelle.access.enums import Role
from passerelle.access.requests import Requests
from passerelle.access.schemas import ApiKeyIn, DecisionIn, RequestIn
from passerelle.catalog.schemas import DatasetIn
from passerelle.catalog.service import Catalog
from tests.fixtures.appdb import token_for

URL = "/api/v1/nodes/me/decisions"


def _key(ctx, org_id: int) -> dict[str, str]:
    return {"X-API-Key": Accounts(ctx).create_api_key(None, org_id, ApiKeyIn(name="n")).key}


def test_a_node_key_reads_only_its_own_organisations_decisions(client, web_ctx, seeded):
    ctx = web_ctx
    body = DatasetIn(title="T", description="D", domains=["person"], contact_email="a@b.fr")
    ds = [Catalog(ctx).create(seeded.p(o, Role.STEWARD), body).id for o in ("hopa", "hopb")]
    svc = Requests(ctx)
    applicant = seeded.p("bio", Role.APPLICANT)
    req_in = RequestIn(
        title="R",
        purpose=["research", "teaching"],
        gdpr_art6="6.1.e",
        gdpr_art9="9.2.j",
        dataset_ids=ds,
    )
    req = svc.submit(applicant, svc.create(applicant, req_in).id)
    review = {r.producer_id: r.id for r in req.reviews}
    hopa, hopb = seeded.orgs["hopa"], seeded.orgs["hopb"]
    key_a, key_b, key_bio = _key(ctx, hopa), _key(ctx, hopb), _key(ctx, seeded.orgs["bio"])

    assert client.get(URL, headers=key_a).json()["items"] == []  # in review: nothing yet
    svc.decide(
        seeded.p("hopa", Role.REVIEWER),
        review[hopa],
        DecisionIn(status="approved_with_conditions", conditions="aggregates only"),
    )
    svc.decide(seeded.p("hopb", Role.REVIEWER), review[hopb], DecisionIn(status="rejected"))

    page = client.get(URL, headers=key_a).json()
    assert (page["organisation_id"], page["total"]) == (hopa, 1)
    (item,) = page["items"]
    assert item["project_id"] == f"request-{req.id}"
    assert (item["action"], item["purpose"], item["output_type"]) == (
        "approve",
        "research",
        "aggregates",
    )
    assert item["review_status"] == "approved_with_conditions"
    assert item["decided_by"] and item["decided_at"] and item["producer_id"] == hopa
    (b,) = client.get(URL, headers=key_b).json()["items"]
    assert (b["action"], b["review_id"]) == ("revoke", review[hopb])
    assert client.get(URL, headers=key_bio).json()["items"] == []  # the applicant's org

    svc.close(applicant, req.id)  # closing the project revokes it at every node
    (item,) = client.get(URL, headers=key_a).json()["items"]
    assert (item["action"], item["request_status"]) == ("revoke", "closed")

    user = {"Authorization": f"Bearer {token_for(ctx, seeded.users[('hopa', Role.ADMIN)])}"}
    assert client.get(URL, headers=user).status_code == 403
    assert client.get(URL).status_code == 401
    assert client.get(URL, headers={"X-API-Key": "nope"}).status_code == 401
    paged = client.get(URL, headers=key_a, params={"limit": 1, "offset": 1}).json()
    assert (paged["total"], paged["items"]) == (1, [])
