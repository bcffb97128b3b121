"""The observatory's statistics from a request history made with a moved clock, on SQLite and
PostgreSQL: purposes per actor type, sources, delays, approvals, first results, filters, CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from passerelle.access.enums import Domain, OrgType, Purpose, ReviewStatus, Role
from passerelle.access.requests import Requests
from passerelle.access.schemas import DecisionIn, RequestIn
from passerelle.catalog.schemas import DatasetIn
from passerelle.catalog.service import Catalog
from passerelle.observatory.export import to_csv
from passerelle.observatory.stats import (
    Filters,
    ObservatoryService,
    Table,
    percentile,
    ranked_percentile,
)
from tests.fixtures.appdb import Seed


def dataset(ctx, org_id: int, title: str) -> int:
    data = DatasetIn(
        title=title,
        description="d",
        domains=[Domain.CONDITION],
        contact_email="dpo@example.org",
    )
    return Catalog(ctx).create(None, data, org_id).id


def file(ctx, s: Seed, org: str, purposes, datasets, domains=()) -> int:
    reqs = Requests(ctx)
    data = RequestIn(
        title=f"study of {org}",
        purpose=purposes,
        dataset_ids=datasets,
        domains=list(domains),
        gdpr_art6="6.1.e",
        gdpr_art9="9.2.j",
    )
    out = reqs.create(s.p(org, Role.APPLICANT), data)
    reqs.submit(s.p(org, Role.APPLICANT), out.id)
    return out.id


def decide(ctx, s: Seed, producer: str, request_id: int, status: ReviewStatus) -> None:
    reqs = Requests(ctx)
    review = next(
        r for r in reqs.get(None, request_id).reviews if r.producer_name == f"Org {producer}"
    )
    reqs.decide(s.p(producer, Role.REVIEWER), review.id, DecisionIn(status=status))


@pytest.fixture
def history(ctx, seeded, clock):
    s = seeded
    a = dataset(ctx, s.orgs["hopa"], "A")
    b = dataset(ctx, s.orgs["hopb"], "B")
    t0 = clock.now()
    r1 = file(ctx, s, "bio", [Purpose.RESEARCH, Purpose.AI_PRODUCT], [a, b], [Domain.DRUG])
    clock.advance(days=10)
    decide(ctx, s, "hopa", r1, ReviewStatus.APPROVED)
    clock.advance(days=5)
    decide(ctx, s, "hopb", r1, ReviewStatus.REJECTED)
    r2 = file(ctx, s, "hopa", [Purpose.RESEARCH], [b], [Domain.CONDITION])
    clock.advance(days=5)
    with ctx.uow.write() as dal:  # the project's first result, as the workspace records it
        dal.audit("user:1", "study.run", "request", r1, {"study": 0})
    clock.advance(days=65)
    decide(ctx, s, "hopb", r2, ReviewStatus.APPROVED)
    file(ctx, s, "bio", [Purpose.MARKET_ACCESS], [b])  # r3: still open at hopb
    Requests(ctx).create(  # a draft is never counted
        s.p("bio", Role.APPLICANT), RequestIn(title="draft", purpose=[Purpose.TEACHING])
    )
    clock.advance(days=61)  # r3 is now past its 60-day deadline
    return {"t0": t0, "r1": r1, "r2": r2}


def test_statistics_from_a_request_history(ctx, history, clock):
    obs = ObservatoryService(ctx.db, clock).get(Filters())
    assert obs.requests == 3
    shares = dict(obs.purpose_shares())
    assert shares["biotech"] == pytest.approx(
        {"research": 1 / 3, "ai_product": 1 / 3, "market_access": 1 / 3}
    )
    assert shares["hospital"] == {"research": 1.0}
    assert obs.sources["biotech"] == {"Org hopa": 1, "Org hopb": 2}
    assert obs.domains["hospital"] == {"condition_occurrence": 1}
    assert sum(n for _, n in obs.months) == 3

    delays = {d["producer"]: d for d in obs.delays}
    assert delays["Org hopa"] == {
        "producer": "Org hopa",
        "decided": 1,
        "median_days": 10.0,
        "p90_days": 10.0,
        "within_deadline": 1.0,
        "approval_rate": 1.0,
        "open": 0,
        "open_overdue": 0,
    }
    b = delays["Org hopb"]
    assert (b["decided"], b["median_days"], b["p90_days"]) == (2, 42.5, 64.5)  # 15 and 70 days
    assert (b["within_deadline"], b["approval_rate"], b["open"], b["open_overdue"]) == (
        0.5,
        0.5,
        1,
        1,
    )
    approvals = {d["actor_type"]: d for d in obs.approvals_by_actor}
    assert approvals["biotech"]["approval_rate"] == 0.5
    assert approvals["hospital"]["approval_rate"] == 1.0
    first = {d["actor_type"]: d for d in obs.first_result}
    assert first["biotech"]["median_days"] == 20.0 and first["all"]["requests_with_result"] == 1
    assert obs.audit_count > 0 and len(obs.audit_head) == 64


def test_filters(ctx, history, clock):
    service = ObservatoryService(ctx.db, clock)
    assert service.get(Filters(actor_type=OrgType.HOSPITAL)).requests == 1
    assert service.get(Filters(purpose=Purpose.MARKET_ACCESS)).requests == 1
    day0 = history["t0"].date()
    assert service.get(Filters(end=day0)).requests == 1
    assert service.get(Filters(start=day0 + timedelta(days=1))).requests == 2
    assert service.get(Filters(actor_type=OrgType.PHARMA)).requests == 0


def test_the_cache_follows_the_audit_chain(ctx, history, clock):
    service = ObservatoryService(ctx.db, clock)
    service.SYNC_SECONDS = float("inf")  # as on a small platform, however loaded the machine
    first = service.get(Filters())
    assert service.get(Filters()) is first
    with ctx.uow.write() as dal:
        dal.audit("user:1", "study.run", "request", history["r2"], {})
    again = service.get(Filters())  # the page waits for fresh figures
    assert again is not first and again.audit_count == first.audit_count + 1
    assert {d["actor_type"] for d in again.first_result} == {"biotech", "hospital", "all"}
    clock.advance(hours=2)  # overdue-ness moves with time alone
    assert service.get(Filters()) is not again


def test_a_slow_computation_serves_the_last_figures_while_it_refreshes(ctx, history, clock):
    service = ObservatoryService(ctx.db, clock)
    service.SYNC_SECONDS = 0.0  # as on a large platform
    first = service.get(Filters())
    with ctx.uow.write() as dal:
        dal.audit("user:1", "study.run", "request", history["r2"], {})
    assert service.get(Filters()) is first  # served at once, as of first.computed_at
    service.wait()
    fresh = service.get(Filters())
    assert fresh is not first and fresh.audit_count == first.audit_count + 1
    blocking = ObservatoryService(ctx.db, clock, background=False)
    blocking.SYNC_SECONDS = 0.0
    assert blocking.get(Filters()).audit_count == fresh.audit_count


def test_csv_export(ctx, history, clock):
    obs = ObservatoryService(ctx.db, clock).get(Filters())
    tables = obs.tables()
    rows = list(csv.reader(io.StringIO(to_csv(tables["delays"]))))
    assert rows[0] == tables["delays"].columns
    assert {r[0] for r in rows[1:]} == {"Org hopa", "Org hopb"}
    risky = Table("t", ["name"], [["=HYPERLINK(1)"], [None]])
    assert to_csv(risky) == 'name\n\'=HYPERLINK(1)\n""\n'


def test_percentiles_from_ranks_equal_percentiles_from_all_values():
    import random

    rng = random.Random(3)
    for n in (1, 2, 3, 10, 11, 57):
        values = sorted(rng.uniform(0, 100) for _ in range(n))
        ranked = dict(enumerate(values, start=1))
        for q in (0.5, 0.9):
            assert ranked_percentile(ranked, n, q) == pytest.approx(percentile(values, q))
    assert ranked_percentile({}, 0, 0.5) is None


def test_percentile():
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.9) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([0.0, 10.0], 0.9) == 9.0
