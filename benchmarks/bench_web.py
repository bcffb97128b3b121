"""Web pages with 10,000 requests and 1,000 datasets in the app database (SQLite): server time
of catalogue search and of the observatory, p50 and p99 (goal: p99 < 300 ms on 2 cores).

Server time is measured inside the process, around the ASGI application (from the request
entering the app to the last byte of the response), so the client is not counted. The
observatory is measured served from its cache (until the audit chain moves), with the audit
chain moving before every call (each call then serves the last figures while one background
thread recomputes them: stale-while-revalidate, the page says as of when), and the statistics'
computation on its own (no goal: it is what the background thread does). The history is
inserted in bulk into the tables the services write, with decisions, first results
(`study.run` audit entries) and a valid audit chain.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import BenchRow

N_REQUESTS = 10_000
N_DATASETS = 1_000
N_PRODUCERS = 40
N_RESULTS = 2_000
CALLS = 200
COMPUTED_CALLS = 40
GOAL = "p99 < 300 ms"
WORDS = ("diabetes", "cancer", "cardiology", "stroke", "sepsis", "asthma", "covid", "renal")


class Timed:
    """ASGI wrapper recording each request's server time in seconds."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.times: list[float] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        await self.app(scope, receive, send)
        self.times.append(time.perf_counter() - started)


def _seed(settings: Any) -> None:
    from passerelle.access import audit
    from passerelle.access.clock import MovableClock
    from passerelle.access.context import Context
    from passerelle.access.enums import (
        Methodology,
        OrgType,
        OutputType,
        Purpose,
        RequestStatus,
        ReviewStatus,
        UpdateFrequency,
    )
    from passerelle.access.models import (
        AccessRequest,
        Dataset,
        Organisation,
        RequestDataset,
        Review,
        User,
    )
    from passerelle.catalog.search import index_text

    rng = random.Random(8)
    clock = MovableClock(datetime(2024, 1, 1, tzinfo=UTC))
    ctx = Context.from_settings(settings, clock)
    ctx.db.upgrade()
    t0 = clock.now()
    applicant_types = [t for t in OrgType if t != OrgType.HOSPITAL]
    with ctx.db.write() as s:
        producers = [
            Organisation(name=f"CHU {i}", type=OrgType.HOSPITAL, country="FR", created_at=t0)
            for i in range(N_PRODUCERS)
        ]
        applicants = [
            Organisation(name=f"Applicant {i}", type=applicant_types[i % 8], created_at=t0)
            for i in range(80)
        ]
        s.add_all(producers + applicants)
        s.flush()
        users = [
            User(organisation_id=o.id, email=f"u{o.id}@x.example", name="u", created_at=t0)
            for o in applicants
        ]
        s.add_all(users)
        s.flush()
        domains = ["condition_occurrence", "drug_exposure", "measurement", "procedure_occurrence"]
        datasets = []
        for i in range(N_DATASETS):
            producer = producers[i % N_PRODUCERS]
            title = f"{WORDS[i % len(WORDS)].title()} cohort {i}"
            doms = rng.sample(domains, 2)
            datasets.append(
                Dataset(
                    organisation_id=producer.id,
                    title=title,
                    description=f"Patients of {producer.name} followed for {WORDS[i % 8]}.",
                    domains=doms,
                    update_frequency=UpdateFrequency.MONTHLY,
                    keywords=[WORDS[(i + 3) % 8]],
                    contact_email="dpo@x.example",
                    health_categories=["EHR"],
                    health_themes=[],
                    published=True,
                    search_text=index_text([title, WORDS[(i + 3) % 8], producer.name], doms),
                    created_at=t0,
                    updated_at=t0 + timedelta(minutes=i),
                )
            )
        s.add_all(datasets)
        s.flush()
        purposes = [p.value for p in Purpose]
        for i in range(N_REQUESTS):
            org = applicants[i % len(applicants)]
            submitted = t0 + timedelta(hours=i * 2)
            per_producer = N_DATASETS // N_PRODUCERS  # dataset i belongs to producer i % 40
            picked = [
                datasets[p + N_PRODUCERS * rng.randrange(per_producer)]
                for p in rng.sample(range(N_PRODUCERS), 2)
            ]
            req = AccessRequest(
                organisation_id=org.id,
                created_by=users[i % len(users)].id,
                title=f"request {i}",
                purpose=rng.sample(purposes, rng.choice((1, 1, 2))),
                methodology=Methodology.MR_004,
                studies=[],
                domains=picked[0].domains,
                output_type=OutputType.AGGREGATES,
                duration_months=12,
                team=[],
                status=RequestStatus.ACTIVE,
                created_at=submitted,
                updated_at=submitted,
                submitted_at=submitted,
                activated_at=submitted,
            )
            req.dataset_links = [RequestDataset(dataset_id=d.id) for d in picked]
            for d in picked:
                delay = timedelta(days=rng.gammavariate(2.0, 15.0))
                decided = rng.random() < 0.85
                req.reviews.append(
                    Review(
                        producer_id=d.organisation_id,
                        status=rng.choice((ReviewStatus.APPROVED, ReviewStatus.REJECTED))
                        if decided
                        else ReviewStatus.IN_REVIEW,
                        review_days=60,
                        started_at=submitted,
                        due_at=submitted + timedelta(days=60),
                        decided_at=submitted + delay if decided else None,
                    )
                )
            s.add(req)
        s.flush()
        for rid in rng.sample(range(1, N_REQUESTS + 1), N_RESULTS):
            clock.set(t0 + timedelta(hours=rid * 2, days=rng.uniform(20, 90)))
            audit.append(s, clock, "user:1", "study.run", "request", rid, {"study": 0})
    ctx.db.dispose()


def _quantiles(times: list[float]) -> tuple[float, float]:
    ms = sorted(t * 1000 for t in times)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return statistics.median(ms), p99


def run() -> list[BenchRow]:
    from fastapi.testclient import TestClient

    from passerelle.access import audit
    from passerelle.access.clock import SystemClock
    from passerelle.config import Settings
    from passerelle.observatory.stats import Filters, compute
    from passerelle.web import create_app

    rows: list[BenchRow] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), app_db_url=f"sqlite:///{Path(tmp) / 'app.db'}")
        _seed(settings)
        app = create_app(settings)
        timed = Timed(app)
        note = f"{N_REQUESTS:,} requests, {N_DATASETS:,} datasets, SQLite, in-process server time"
        with TestClient(timed, base_url="http://127.0.0.1") as client:

            def measure(paths: list[str], before: Any = None) -> list[float]:
                for p in paths[:5]:  # warm-up: templates, connections
                    assert client.get(p).status_code == 200, p
                timed.times.clear()
                for p in paths:
                    if before is not None:
                        before()
                    r = client.get(p)
                    assert r.status_code == 200, p
                return list(timed.times)

            searches = [
                f"/catalogue?q={WORDS[i % 8]}&domain="
                + ("measurement" if i % 3 == 0 else "")
                + ("&page=2" if i % 5 == 0 else "")
                for i in range(CALLS)
            ]
            service = app.state.observatory

            def move_the_chain() -> None:
                with service.db.write() as session:
                    audit.append(session, SystemClock(), "bench", "bench.tick", "bench", 0, {})

            def compute_times() -> list[float]:
                out = []
                for _ in range(COMPUTED_CALLS):
                    started = time.perf_counter()
                    with service.db.read() as session:
                        compute(session, Filters(), datetime.now(UTC))
                    out.append(time.perf_counter() - started)
                return out

            measured = [
                ("catalogue search page", measure(searches), GOAL),
                ("observatory page, cached", measure(["/observatory"] * CALLS), GOAL),
                (
                    "observatory page, the audit chain moving before every call",
                    measure(["/observatory"] * COMPUTED_CALLS, before=move_the_chain),
                    GOAL,
                ),
                ("observatory CSV export", measure(["/observatory/delays.csv"] * CALLS), GOAL),
                ("observatory statistics computation (no page)", compute_times(), ""),
            ]
            service.wait()
            for name, times, goal in measured:
                p50, p99 = _quantiles(times)
                rows.append(BenchRow("web", f"{name}: p50", p50, "ms", note=note))
                rows.append(BenchRow("web", f"{name}: p99", p99, "ms", goal=goal, note=note))
        app.state.services.ctx.db.dispose()
    return rows


if __name__ == "__main__":
    for row in run():
        print(f"{row.name:60s} {row.value:10.1f} {row.unit} {row.goal}")
