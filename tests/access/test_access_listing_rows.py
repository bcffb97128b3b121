"""The request listing is read as plain rows (no ORM objects): each item must be exactly the
request as `Requests.get` builds it from ORM objects, for every role, filter and page; and the
JSON the API sends from those rows (orjson, no validation on the way out) must be the JSON of
the validated page."""

from __future__ import annotations

import orjson
import pytest

from passerelle.access.enums import RequestStatus, ReviewStatus, Role
from passerelle.access.requests import Requests
from passerelle.access.schemas import DecisionIn, RequestIn
from passerelle.catalog.schemas import DatasetIn
from passerelle.catalog.service import Catalog
from passerelle.web.errors import json_response

A = Role.APPLICANT
SPEC = {
    "study": "gi-bleed",
    "cohort": {"entry": {"condition": {"concepts": [192671], "descendants": True}}},
    "analyses": [{"name": "persons", "count": "persons", "by": ["sex"]}],
}


@pytest.fixture
def requests(ctx, seeded, clock):
    cat, svc = Catalog(ctx), Requests(ctx)
    ids = [
        cat.create(
            seeded.p(org, Role.STEWARD),
            DatasetIn(
                title=f"Stays {org}",
                description="Hospital stays",
                domains=["condition_occurrence"],
                contact_email="dpo@example.org",
            ),
        ).id
        for org in ("hopa", "hopb")
    ]
    for i in range(9):
        org = "bio" if i % 3 else "hopb"
        req = svc.create(
            seeded.p(org, A),
            RequestIn(
                title=f"Study {i}",
                purpose=["research", "teaching"] if i % 2 else ["research"],
                gdpr_art6="6.1.e",
                gdpr_art9="9.2.j",
                dataset_ids=ids if i % 2 else ids[:1],
                studies=[SPEC] if i % 2 else [],
                team=[{"name": "Dr Who", "role": "PI"}],
            ),
        )
        if i % 4:
            req = svc.submit(seeded.p(org, A), req.id)
            clock.advance(days=i * 7)
            decision = (ReviewStatus.APPROVED, ReviewStatus.CHANGES_REQUESTED)[i % 2]
            svc.decide(
                seeded.p("hopa", Role.REVIEWER), req.reviews[0].id, DecisionIn(status=decision)
            )
        if i == 8:
            svc.close(seeded.p(org, A), req.id)
    clock.advance(days=20)
    return svc


CALLERS = [
    ("bio", A),
    ("hopb", A),
    ("hopa", Role.REVIEWER),
    ("hopb", Role.REVIEWER),
    ("hopa", Role.ADMIN),
    ("bio", Role.AUDITOR),
    ("hopa", Role.STEWARD),
]


@pytest.mark.parametrize("who", CALLERS, ids=lambda w: f"{w[0]}-{w[1].value}")
def test_each_item_is_the_request_as_get_shows_it(requests, seeded, who):
    p = seeded.p(*who)
    everything = requests.list(p, None, 0, 100)
    assert everything.total == len(everything.items)
    assert [r.id for r in everything.items] == sorted(
        (r.id for r in everything.items), reverse=True
    )
    for item in everything.items:
        assert item == requests.get(None, item.id)  # the ORM objects, as the CLI reads them
    for status in (None, *RequestStatus):
        for offset, limit in ((0, 100), (0, 2), (1, 3), (5, 20), (50, 10)):
            page = requests.list(p, status, offset, limit)
            wanted = [r for r in everything.items if status is None or r.status == status]
            assert (page.total, page.offset, page.limit) == (len(wanted), offset, limit)
            assert page.items == wanted[offset : offset + limit]
            assert page.model_dump_json()


def test_a_node_key_sees_the_requests_naming_its_organisation(requests, seeded):
    from passerelle.access.auth import Principal
    from passerelle.access.enums import OrgType

    node = Principal("node", seeded.orgs["hopb"], OrgType.HOSPITAL, frozenset(), key_id=1)
    page = requests.list(node, None, 0, 100)
    assert page.total > 0
    for item in page.items:
        assert seeded.orgs["hopb"] in {r.producer_id for r in item.reviews}
        assert item == requests.get(None, item.id)


@pytest.mark.parametrize("who", CALLERS, ids=lambda w: f"{w[0]}-{w[1].value}")
def test_whatever_a_caller_lists_it_may_open(requests, seeded, who):
    """hopb both applies and produces: its reviewers must open the requests they review."""
    p = seeded.p(*who)
    for item in requests.list(p, None, 0, 100).items:
        assert requests.get(p, item.id) == item


@pytest.mark.parametrize("who", CALLERS, ids=lambda w: f"{w[0]}-{w[1].value}")
def test_the_api_sends_the_json_of_the_validated_page(requests, seeded, who):
    p = seeded.p(*who)
    for status in (None, *RequestStatus):
        for offset, limit in ((0, 100), (1, 3)):
            sent = json_response(requests.list_rows(p, status, offset, limit)).body
            validated = requests.list(p, status, offset, limit).model_dump_json()
            assert orjson.loads(sent) == orjson.loads(validated)
