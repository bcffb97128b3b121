"""`passerelle.federation.sync` against the real single-window app (in process, over ASGI):
decisions reach the node's register once, revocations follow, another organisation's key is
refused before anything is applied."""

from __future__ import annotations

import datetime as dt

import pytest

from passerelle.access.accounts import Accounts
from passerelle.access.enums import Role
from passerelle.access.requests import Requests
from passerelle.access.schemas import ApiKeyIn, DecisionIn, RequestIn
from passerelle.catalog.schemas import DatasetIn
from passerelle.catalog.service import Catalog
from passerelle.federation.config import SyncConfig
from passerelle.federation.register import NodeRegister
from passerelle.federation.sync import SyncError, sync


def _active(reg: NodeRegister, project: str) -> list:
    now = dt.datetime.now(dt.UTC)
    return [a for a in reg.approvals_of(project) if a.active(now)]


@pytest.fixture
def world(web_ctx, seeded):
    body = DatasetIn(title="T", description="D", domains=["person"], contact_email="a@b.fr")
    ds = [Catalog(web_ctx).create(seeded.p(o, Role.STEWARD), body).id for o in ("hopa", "hopb")]
    svc = Requests(web_ctx)
    applicant = seeded.p("bio", Role.APPLICANT)

    def submit(datasets: list[int]) -> tuple[int, dict[int, int]]:
        req_in = RequestIn(
            title="R",
            purpose=["public_policy", "research"],
            gdpr_art6="6.1.e",
            gdpr_art9="9.2.j",
            dataset_ids=datasets,
        )
        req = svc.submit(applicant, svc.create(applicant, req_in).id)
        return req.id, {r.producer_id: r.id for r in req.reviews}

    keys = {
        o: Accounts(web_ctx).create_api_key(None, seeded.orgs[o], ApiKeyIn(name="node")).key
        for o in ("hopa", "hopb")
    }
    return {"svc": svc, "applicant": applicant, "ds": ds, "submit": submit, "keys": keys}


def test_sync_applies_decisions_once_and_follows_revocations(client, seeded, world, tmp_path):
    svc, hopa = world["svc"], seeded.orgs["hopa"]
    first, reviews = world["submit"](world["ds"])
    second, reviews2 = world["submit"](world["ds"][:1])
    cfg = SyncConfig("http://testserver", world["keys"]["hopa"], "Org hopa")
    reg = NodeRegister(tmp_path / "node.db")

    assert sync(reg, cfg, client).fetched == 0  # nothing decided yet
    reviewer = seeded.p("hopa", Role.REVIEWER)
    svc.decide(reviewer, reviews[hopa], DecisionIn(status="approved"))
    svc.decide(reviewer, reviews2[hopa], DecisionIn(status="rejected"))

    report = sync(reg, cfg, client)
    assert (report.fetched, report.approved, report.revoked) == (2, 1, 1)
    (approval,) = _active(reg, f"request-{first}")
    assert (approval.purpose, approval.output_type) == ("public_policy", "aggregates")
    assert "reviewer hopa" in approval.approved_by and f"review {reviews[hopa]}" in (
        approval.reference
    )
    assert approval.expires_at is not None  # the project's end
    assert _active(reg, f"request-{second}") == []
    log = reg.sync_log()
    assert [(e["review_id"], e["action"]) for e in log] == [
        (reviews[hopa], "approve"),
        (reviews2[hopa], "revoke"),
    ]
    assert log[0]["decided_at"] is not None and log[0]["hub"] == "http://testserver"

    again = sync(reg, cfg, client)  # idempotent
    assert (again.approved, again.revoked, again.unchanged) == (0, 0, 2)
    assert len(reg.approvals_of(f"request-{first}")) == 1

    svc.close(world["applicant"], first)  # the project ends: the node revokes it
    report = sync(reg, cfg, client)
    assert (report.approved, report.revoked) == (0, 1)
    assert _active(reg, f"request-{first}") == []
    reg.close()


def test_another_organisations_key_applies_nothing(client, seeded, world, tmp_path):
    _, reviews = world["submit"](world["ds"])
    world["svc"].decide(
        seeded.p("hopb", Role.REVIEWER), reviews[seeded.orgs["hopb"]], DecisionIn(status="approved")
    )
    reg = NodeRegister(tmp_path / "node.db")
    wrong_key = SyncConfig("http://testserver", world["keys"]["hopb"], "Org hopa")
    with pytest.raises(SyncError, match="belongs to 'Org hopb'"):
        sync(reg, wrong_key, client)
    user_token = SyncConfig("http://testserver", "not-a-key", "Org hopa")
    with pytest.raises(SyncError, match="refused the node API key"):
        sync(reg, user_token, client)
    assert reg.all_approvals() == [] and reg.sync_log() == []
    reg.close()
