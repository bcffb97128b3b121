"""The request lifecycle, the transitions table, and each producer's clock (moved clock)."""

from __future__ import annotations

import pytest

from passerelle.access import audit
from passerelle.access.enums import Owner, RequestStatus, ReviewStatus, Role
from passerelle.access.errors import Conflict, Forbidden, Invalid
from passerelle.access.requests import Requests
from passerelle.access.schemas import DecisionIn, ExtensionIn, RequestIn
from passerelle.access.workflow import REQUEST_TRANSITIONS, REVIEW_TRANSITIONS
from passerelle.catalog.schemas import DatasetIn
from passerelle.catalog.service import Catalog

A, RV = Role.APPLICANT, Role.REVIEWER
SPEC = {
    "study": "gi-bleed",
    "cohort": {"entry": {"condition": {"concepts": [192671], "descendants": True}}},
    "analyses": [{"name": "persons", "count": "persons", "by": ["sex"]}],
}


def test_every_status_appears_in_the_transitions_table():
    for enum, table in ((RequestStatus, REQUEST_TRANSITIONS), (ReviewStatus, REVIEW_TRANSITIONS)):
        named = {t.source for t in table} | {t.target for t in table}
        assert named == set(enum), f"{enum.__name__} missing {set(enum) - named}"
    owners = {t.owner for t in REQUEST_TRANSITIONS + REVIEW_TRANSITIONS}
    assert owners <= set(Owner)


def dataset(ctx, seeded, org, title="Stays"):
    return Catalog(ctx).create(
        seeded.p(org, Role.STEWARD),
        DatasetIn(
            title=title,
            description="Hospital stays",
            domains=["condition_occurrence"],
            contact_email="dpo@example.org",
        ),
    )


def new_request(ctx, seeded, **over):
    d1, d2 = dataset(ctx, seeded, "hopa"), dataset(ctx, seeded, "hopb")
    fields = dict(
        title="GI bleeding after NSAIDs",
        purpose=["research"],
        description="Cohort study",
        public_interest="Drug safety",
        gdpr_art6="6.1.e",
        gdpr_art9="9.2.j",
        methodology="MR-004",
        dataset_ids=[d1.id, d2.id],
        studies=[SPEC],
        domains=["condition_occurrence"],
        output_type="aggregates",
        duration_months=12,
        team=[{"name": "Dr Who", "role": "PI"}],
    )
    fields.update(over)
    return Requests(ctx).create(seeded.p("bio", A), RequestIn(**fields))


def review_of(req, seeded, org):
    return next(r for r in req.reviews if r.producer_id == seeded.orgs[org])


def test_one_request_two_producers_active_on_first_approval(ctx, seeded):
    svc = Requests(ctx)
    req = new_request(ctx, seeded)
    assert req.status == RequestStatus.DRAFT and req.reviews == []
    req = svc.submit(seeded.p("bio", A), req.id)
    assert req.status == RequestStatus.SUBMITTED
    assert {r.producer_id for r in req.reviews} == {seeded.orgs["hopa"], seeded.orgs["hopb"]}
    assert all(r.status == ReviewStatus.IN_REVIEW and r.days_left == 60 for r in req.reviews)
    ra = review_of(req, seeded, "hopa")
    req = svc.decide(
        seeded.p("hopa", RV),
        ra.id,
        DecisionIn(status="approved_with_conditions", conditions="aggregates only"),
    )
    assert req.status == RequestStatus.ACTIVE and req.ends_at is not None
    rb = review_of(req, seeded, "hopb")
    req = svc.decide(seeded.p("hopb", RV), rb.id, DecisionIn(status="rejected", comment="no"))
    assert req.status == RequestStatus.ACTIVE
    with ctx.db.read() as s:
        v = audit.verify(s)
    assert v.ok
    with ctx.db.read() as s:
        actions = [e.action for e in audit.list_entries(s, 0, 100, "request")[1]]
    assert {"request.create", "request.submit", "request.activate"} <= set(actions)


def test_all_rejected_rejects_the_request_and_wrong_moves_conflict(ctx, seeded):
    svc = Requests(ctx)
    req = svc.submit(seeded.p("bio", A), new_request(ctx, seeded).id)
    for org in ("hopa", "hopb"):
        req = svc.decide(
            seeded.p(org, RV), review_of(req, seeded, org).id, DecisionIn(status="rejected")
        )
    assert req.status == RequestStatus.REJECTED
    with pytest.raises(Conflict):
        svc.decide(
            seeded.p("hopa", RV), review_of(req, seeded, "hopa").id, DecisionIn(status="approved")
        )
    with pytest.raises(Conflict):
        svc.submit(seeded.p("bio", A), req.id)


def test_who_may_act(ctx, seeded):
    svc = Requests(ctx)
    req = new_request(ctx, seeded)
    with pytest.raises(Forbidden):
        svc.submit(seeded.p("hopa", A), req.id)  # an applicant of another organisation
    with pytest.raises(Forbidden):
        svc.get(seeded.p("hopa", RV), req.id)  # producers see it only once submitted
    req = svc.submit(seeded.p("bio", A), req.id)
    svc.get(seeded.p("hopa", RV), req.id)
    with pytest.raises(Forbidden):
        svc.decide(
            seeded.p("hopb", RV), review_of(req, seeded, "hopa").id, DecisionIn(status="approved")
        )
    with pytest.raises(Forbidden):
        svc.decide(
            seeded.p("hopa", Role.STEWARD),
            review_of(req, seeded, "hopa").id,
            DecisionIn(status="approved"),
        )


def test_submission_needs_datasets_and_legal_basis(ctx, seeded):
    req = new_request(ctx, seeded, gdpr_art9=None)
    with pytest.raises(Invalid, match="gdpr"):
        Requests(ctx).submit(seeded.p("bio", A), req.id)


def test_sql_in_a_study_is_refused(ctx, seeded):
    with pytest.raises(Invalid, match="studies"):
        new_request(ctx, seeded, studies=[{"sql": "select 1"}])


def test_an_invalid_study_is_refused_with_its_path(ctx, seeded):
    bad = {**SPEC, "cohort": {"entry": {"condition": {"concepts": ["DROP TABLE person"]}}}}
    with pytest.raises(Invalid, match=r"studies\[0\]: cohort"):
        new_request(ctx, seeded, studies=[bad])


def test_clock_pauses_while_changes_are_requested(ctx, seeded, clock):
    svc = Requests(ctx)
    req = svc.submit(seeded.p("bio", A), new_request(ctx, seeded).id)
    ra = review_of(req, seeded, "hopa")
    clock.advance(days=20)
    req = svc.decide(seeded.p("hopa", RV), ra.id, DecisionIn(status="changes_requested"))
    ra = review_of(req, seeded, "hopa")
    assert ra.clock == "paused" and ra.days_left == 40
    clock.advance(days=30)  # the applicant takes 30 days: not counted
    req = svc.get(seeded.p("bio", A), req.id)
    assert review_of(req, seeded, "hopa").days_left == 40
    req = svc.update(
        seeded.p("bio", A), req.id, RequestIn(**{**_fields(req), "description": "revised"})
    )
    req = svc.resubmit(seeded.p("bio", A), ra.id)
    ra = review_of(req, seeded, "hopa")
    assert ra.status == ReviewStatus.IN_REVIEW and ra.days_left == 40
    assert review_of(req, seeded, "hopb").days_left == 10  # the other clock kept running


def _fields(req):
    keys = RequestIn.model_fields
    return {k: getattr(req, k) for k in keys if hasattr(req, k)}


def test_extension_once_with_a_reason_and_overdue(ctx, seeded, clock):
    svc = Requests(ctx)
    req = svc.submit(seeded.p("bio", A), new_request(ctx, seeded).id)
    ra = review_of(req, seeded, "hopa")
    clock.advance(days=52)
    assert review_of(svc.get(None, req.id), seeded, "hopa").clock == "near_due"
    req = svc.extend(seeded.p("hopa", RV), ra.id, ExtensionIn(days=30, reason="expert opinion"))
    ra = review_of(req, seeded, "hopa")
    assert ra.days_left == 38 and ra.clock == "on_time" and ra.extension_reason
    with pytest.raises(Conflict, match="already extended"):
        svc.extend(seeded.p("hopa", RV), ra.id, ExtensionIn(days=5, reason="again"))
    clock.advance(days=39)
    ra = review_of(svc.get(None, req.id), seeded, "hopa")
    assert ra.clock == "overdue" and ra.days_left == -1
    queue = svc.queue(seeded.p("hopa", RV))
    assert queue.total == 1 and queue.items[0].clock == "overdue"


def test_reminders_and_no_silence_rule_by_default(ctx, seeded, clock):
    svc = Requests(ctx)
    req = svc.submit(seeded.p("bio", A), new_request(ctx, seeded).id)
    clock.advance(days=51)
    out = svc.tick()
    assert out.reminded == 2 and out.approved_on_silence == 0
    sent = ctx.mailer.sent
    assert {m.to for m in sent} == {("reviewer@hopa.example",), ("reviewer@hopb.example",)}
    assert svc.tick().reminded == 0  # once per state
    clock.advance(days=10)
    assert svc.tick().reminded == 2  # overdue: one more
    assert svc.get(None, req.id).status == RequestStatus.SUBMITTED


def test_approved_on_silence_when_enabled(ctx, seeded, clock):
    ctx.settings = ctx.settings.model_copy(update={"approve_on_silence": True})
    svc = Requests(ctx)
    req = svc.submit(seeded.p("bio", A), new_request(ctx, seeded).id)
    ra = review_of(req, seeded, "hopa")
    svc.decide(
        seeded.p("hopb", RV), review_of(req, seeded, "hopb").id, DecisionIn(status="rejected")
    )
    clock.advance(days=59)
    assert svc.tick().approved_on_silence == 0
    clock.advance(days=2)
    assert svc.tick().approved_on_silence == 1
    req = svc.get(None, req.id)
    ra = review_of(req, seeded, "hopa")
    assert ra.status == ReviewStatus.APPROVED and ra.on_silence
    assert req.status == RequestStatus.ACTIVE


def test_active_project_expires_after_its_duration(ctx, seeded, clock):
    svc = Requests(ctx)
    req = svc.submit(seeded.p("bio", A), new_request(ctx, seeded, duration_months=1).id)
    svc.decide(
        seeded.p("hopa", RV), review_of(req, seeded, "hopa").id, DecisionIn(status="approved")
    )
    clock.advance(days=29)
    assert svc.tick().expired == 0
    clock.advance(days=2)
    assert svc.tick().expired == 1
    assert svc.get(None, req.id).status == RequestStatus.EXPIRED
    with pytest.raises(Conflict):
        svc.close(seeded.p("bio", A), req.id)
