"""A seeded history of access requests, replayed through the access service layer.

About 300 requests over the two years before now. Each actor type files a fixed number of
requests (`REQUESTS_PER_TYPE`) and its purposes follow `PURPOSE_SHARES`: the published shares
of the 2025 survey of 155 French health organisations where it gives them (research first
for health establishments 26 %, biotechs 45 %, digital-health companies 30.3 %; public bodies:
policy steering 41.6 %, research 32.6 %), the rest spread as docs/demo.md documents. Counts
are apportioned with the largest-remainder method, so the observatory shows these shares
to within one request.

Each producer's decision delay is log-normal (`DELAY_MEDIAN_DAYS`, `DELAY_SIGMA`); 15 % of
reviews first ask for changes. Every step (create, submit, decide, resubmit, a study's first
run) is replayed in time order with the access package's injectable clock set to the step's
time, so the audit chain is the real one, backdated and in order. Steps after now are not
played: those reviews are still pending (and some are overdue).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from passerelle.access.clock import MovableClock
from passerelle.access.context import Context
from passerelle.access.enums import (
    APPROVED_REVIEWS,
    Domain,
    GdprArt6,
    GdprArt9,
    Methodology,
    OrgType,
    OutputType,
    Purpose,
    ReviewStatus,
    Role,
)
from passerelle.access.requests import Requests
from passerelle.access.schemas import DecisionIn, RequestIn
from passerelle.demo.fhir import HOSPITALS
from passerelle.demo.seed import APPLICANTS, Seeded

P = Purpose
# Requests per actor type (300 in all).
REQUESTS_PER_TYPE: dict[OrgType, int] = {
    OrgType.HOSPITAL: 50,
    OrgType.ACADEMIC_LAB: 55,
    OrgType.BIOTECH: 40,
    OrgType.MEDTECH: 25,
    OrgType.PHARMA: 35,
    OrgType.DIGITAL_HEALTH: 33,
    OrgType.PUBLIC_BODY: 43,
    OrgType.PATIENT_ASSOCIATION: 12,
    OrgType.OTHER: 7,
}
# Share of each purpose within each actor type (each row adds up to 1). Survey figures:
# hospital research 0.26, biotech research 0.45, digital health research 0.303, public body
# public policy 0.416 and research 0.326. The other figures are the demo's own assumptions.
PURPOSE_SHARES: dict[OrgType, dict[Purpose, float]] = {
    OrgType.HOSPITAL: {
        P.RESEARCH: 0.26,
        P.CARE_QUALITY: 0.22,
        P.AI_PRODUCT: 0.16,
        P.TEACHING: 0.14,
        P.PUBLIC_POLICY: 0.12,
        P.MEDICAL_AFFAIRS: 0.10,
    },
    OrgType.BIOTECH: {
        P.RESEARCH: 0.45,
        P.MARKET_ACCESS: 0.20,
        P.MEDICAL_AFFAIRS: 0.20,
        P.AI_PRODUCT: 0.15,
    },
    OrgType.DIGITAL_HEALTH: {
        P.RESEARCH: 0.303,
        P.AI_PRODUCT: 0.25,
        P.CARE_QUALITY: 0.20,
        P.MARKET_ACCESS: 0.147,
        P.PUBLIC_POLICY: 0.10,
    },
    OrgType.PUBLIC_BODY: {
        P.PUBLIC_POLICY: 0.416,
        P.RESEARCH: 0.326,
        P.CARE_QUALITY: 0.158,
        P.TEACHING: 0.10,
    },
    OrgType.ACADEMIC_LAB: {
        P.RESEARCH: 0.70,
        P.TEACHING: 0.15,
        P.PUBLIC_POLICY: 0.10,
        P.CARE_QUALITY: 0.05,
    },
    OrgType.MEDTECH: {
        P.RESEARCH: 0.36,
        P.MARKET_ACCESS: 0.28,
        P.AI_PRODUCT: 0.20,
        P.MEDICAL_AFFAIRS: 0.16,
    },
    OrgType.PHARMA: {
        P.RESEARCH: 0.34,
        P.MEDICAL_AFFAIRS: 0.29,
        P.MARKET_ACCESS: 0.26,
        P.AI_PRODUCT: 0.11,
    },
    OrgType.PATIENT_ASSOCIATION: {P.RESEARCH: 0.42, P.CARE_QUALITY: 0.33, P.PUBLIC_POLICY: 0.25},
    OrgType.OTHER: {P.RESEARCH: 0.43, P.TEACHING: 0.29, P.CARE_QUALITY: 0.28},
}
HISTORY_DAYS = 730  # submissions over the two years before now, more of them recently
SUBMIT_WITHIN_DAYS = 10  # a request is submitted 2 hours to 10 days after its creation
DRAFT_SHARE = 0.03  # drafts on top of the quota (the observatory does not count them)
PRODUCERS_PER_REQUEST = {1: 0.5, 2: 0.3, 3: 0.2}
EXTRACT_SHARE = 0.15  # output type pseudonymized_extract; the rest aggregates
# Decision delay of one review: log-normal, days of review time (pauses excluded).
DELAY_MEDIAN_DAYS = {"chu-nord": 24.0, "chu-sud": 33.0, "chu-ouest": 47.0}
DELAY_SIGMA = 0.55
CHANGES_SHARE = 0.15  # reviews that first ask for changes (the clock pauses)
RESUBMIT_DAYS = (3, 30)  # the applicant answers within this many days
SECOND_DELAY_FACTOR = 0.4  # after changes, the decision comes faster
REJECT_SHARE = 0.10  # base rejection share of decided reviews
REJECT_SHARE_COMMERCIAL = 0.18  # for market access and AI product purposes
CONDITIONS_SHARE = 0.20  # approvals that come with conditions
FIRST_RUN_SHARE = 0.75  # active aggregate requests that ran a study
FIRST_RUN_MEDIAN_DAYS = 8.0  # days from activation to the first run (log-normal, sigma 0.8)

CELECOXIB_STUDY: dict[str, Any] = {
    "study": "celecoxib-gi-bleed",
    "cohort": {
        "entry": {"drug": {"concepts": [1118084], "descendants": True}, "occurrence": "first"},
        "observation": {"prior_days": 180},
        "demographics": {"age": {"min": 18}},
    },
    "analyses": [
        {"name": "size", "count": "persons"},
        {"name": "by_sex", "count": "persons", "by": ["sex"]},
        {
            "name": "gi_bleed_1y",
            "outcome": {
                "condition": {"concepts": [192671], "descendants": True},
                "window": {"start": 1, "end": 365},
            },
        },
    ],
}
DIABETES_STUDY: dict[str, Any] = {
    "study": "type2-diabetes",
    "cohort": {
        "entry": {"condition": {"concepts": [201826], "descendants": True}, "occurrence": "first"}
    },
    "analyses": [
        {"name": "size", "count": "persons"},
        {"name": "by_sex_age", "count": "persons", "by": ["sex", {"age_band": 20}]},
    ],
}
HYPERTENSION_STUDY: dict[str, Any] = {
    "study": "hypertension-by-year",
    "cohort": {
        "entry": {"condition": {"concepts": [316866], "descendants": True}, "occurrence": "first"}
    },
    "analyses": [
        {"name": "size", "count": "persons"},
        {"name": "by_year", "count": "persons", "by": ["index_year"]},
    ],
}
STUDIES = (CELECOXIB_STUDY, DIABETES_STUDY, HYPERTENSION_STUDY)
STUDY_DOMAINS = {
    "celecoxib-gi-bleed": [Domain.DRUG, Domain.CONDITION],
    "type2-diabetes": [Domain.CONDITION, Domain.MEASUREMENT, Domain.DRUG],
    "hypertension-by-year": [Domain.CONDITION, Domain.MEASUREMENT],
}
TITLES = {
    P.RESEARCH: "Étude de cohorte",
    P.PUBLIC_POLICY: "Pilotage des politiques publiques",
    P.CARE_QUALITY: "Évaluation de la qualité des soins",
    P.MARKET_ACCESS: "Dossier d'accès au marché",
    P.MEDICAL_AFFAIRS: "Affaires médicales et pharmacovigilance",
    P.AI_PRODUCT: "Entraînement et validation d'un algorithme",
    P.TEACHING: "Enseignement",
}
PUBLIC_TYPES = frozenset({OrgType.HOSPITAL, OrgType.ACADEMIC_LAB, OrgType.PUBLIC_BODY})


def apportion(total: int, shares: dict[Purpose, float]) -> list[Purpose]:
    """`total` purposes in the given shares, by the largest-remainder method (in share order)."""
    exact = {p: total * s / sum(shares.values()) for p, s in shares.items()}
    counts = {p: math.floor(x) for p, x in exact.items()}
    left = total - sum(counts.values())
    for p in sorted(exact, key=lambda p: (-(exact[p] - counts[p]), list(shares).index(p)))[:left]:
        counts[p] += 1
    return [p for p in shares for _ in range(counts[p])]


@dataclass
class Decision:
    node: str
    status: ReviewStatus
    at: datetime
    changes_at: datetime | None = None  # when changes were asked, if they were
    resubmitted_at: datetime | None = None


@dataclass
class Plan:
    applicant: str  # organisation key
    actor_type: OrgType
    purpose: Purpose
    producers: list[str]
    output_type: OutputType
    study: dict[str, Any]
    created_at: datetime
    submitted_at: datetime | None
    decisions: list[Decision] = field(default_factory=list)
    first_run_after_days: float | None = None
    request_id: int | None = None
    reviews: dict[str, int] = field(default_factory=dict)  # node -> review id


@dataclass
class History:
    plans: list[Plan]
    approvals: list[tuple[str, str, str, str, datetime]]  # node, project, purpose, output, at
    runs: int = 0
    played: int = 0  # steps replayed through the services


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def _applicants_of(kind: OrgType) -> list[str]:
    return [key for _, t, key in APPLICANTS if t == kind] + (
        [h.node for h in HOSPITALS] if kind == OrgType.HOSPITAL else []
    )


def plan_history(now: datetime, seed: int = 42, scale: float = 1.0) -> list[Plan]:
    """Draw the requests (no database access). `scale` shrinks the history for tests."""
    rng = random.Random(f"{seed}/history")
    plans: list[Plan] = []
    nodes = [h.node for h in HOSPITALS]
    for kind, n in REQUESTS_PER_TYPE.items():
        count = max(1, round(n * scale))
        purposes = apportion(count, PURPOSE_SHARES[kind])
        rng.shuffle(purposes)
        applicants = _applicants_of(kind)
        for purpose in purposes:
            applicant = rng.choice(applicants)
            k = rng.choices(list(PRODUCERS_PER_REQUEST), list(PRODUCERS_PER_REQUEST.values()))[0]
            others = [x for x in nodes if x != applicant]  # a CHU asks the other two
            producers = sorted(rng.sample(others, min(k, len(others))))
            # at least SUBMIT_WITHIN_DAYS before now, so that every request is submitted
            span = HISTORY_DAYS - SUBMIT_WITHIN_DAYS
            ago = SUBMIT_WITHIN_DAYS + span * (1 - math.sqrt(rng.random()))
            created = now - timedelta(days=ago)
            created = created.replace(microsecond=0)
            submitted = created + timedelta(hours=rng.uniform(2, 24 * SUBMIT_WITHIN_DAYS))
            output = (
                OutputType.PSEUDONYMIZED_EXTRACT
                if rng.random() < EXTRACT_SHARE
                else OutputType.AGGREGATES
            )
            plan = Plan(
                applicant,
                kind,
                purpose,
                producers,
                output,
                rng.choice(STUDIES),
                created,
                submitted,
            )
            plan.decisions = [_decision(rng, node, purpose, submitted) for node in producers]
            if rng.random() < FIRST_RUN_SHARE:
                plan.first_run_after_days = _lognormal(rng, FIRST_RUN_MEDIAN_DAYS, 0.8)
            plans.append(plan)
        for _ in range(round(count * DRAFT_SHARE)):  # drafts, on top (never counted)
            plans.append(
                Plan(
                    rng.choice(applicants),
                    kind,
                    rng.choice(purposes),
                    sorted(rng.sample(nodes, 1)),
                    OutputType.AGGREGATES,
                    rng.choice(STUDIES),
                    (now - timedelta(days=rng.uniform(1, 90))).replace(microsecond=0),
                    None,
                )
            )
    return plans


def _decision(rng: random.Random, node: str, purpose: Purpose, submitted: datetime) -> Decision:
    delay = timedelta(days=_lognormal(rng, DELAY_MEDIAN_DAYS[node], DELAY_SIGMA))
    commercial = purpose in (P.MARKET_ACCESS, P.AI_PRODUCT)
    u = rng.random()
    reject = REJECT_SHARE_COMMERCIAL if commercial else REJECT_SHARE
    if u < reject:
        status = ReviewStatus.REJECTED
    elif rng.random() < CONDITIONS_SHARE:
        status = ReviewStatus.APPROVED_WITH_CONDITIONS
    else:
        status = ReviewStatus.APPROVED
    if rng.random() < CHANGES_SHARE:
        changes = submitted + delay
        resubmitted = changes + timedelta(days=rng.uniform(*RESUBMIT_DAYS))
        second = timedelta(
            days=_lognormal(rng, DELAY_MEDIAN_DAYS[node] * SECOND_DELAY_FACTOR, DELAY_SIGMA)
        )
        return Decision(node, status, resubmitted + second, changes, resubmitted)
    return Decision(node, status, submitted + delay)


def _request_in(plan: Plan, seeded: Seeded) -> RequestIn:
    public = plan.actor_type in PUBLIC_TYPES
    return RequestIn(
        title=f"{TITLES[plan.purpose]} — {plan.study['study']}",
        purpose=[plan.purpose],
        description="Demande de démonstration (données synthétiques).",
        public_interest="Améliorer la connaissance des parcours de soins.",
        gdpr_art6=GdprArt6.PUBLIC_TASK if public else GdprArt6.LEGITIMATE_INTEREST,
        gdpr_art9=GdprArt9.PUBLIC_HEALTH if plan.purpose == P.PUBLIC_POLICY else GdprArt9.RESEARCH,
        methodology=Methodology.MR_004,
        dataset_ids=[seeded.datasets[n] for n in plan.producers],
        studies=[plan.study],
        domains=STUDY_DOMAINS[plan.study["study"]],
        output_type=plan.output_type,
        duration_months=24,
    )


def replay(
    ctx: Context,
    clock: MovableClock,
    seeded: Seeded,
    plans: list[Plan],
    now: datetime,
    progress: Callable[[int, int], None] | None = None,
) -> History:
    """Play every step of the plans that falls before `now`, in time order."""
    requests = Requests(ctx)
    steps: list[tuple[datetime, int, int, str, Any]] = []
    for i, plan in enumerate(plans):
        steps.append((plan.created_at, 0, i, "create", None))
        if plan.submitted_at is None:
            continue
        steps.append((plan.submitted_at, 1, i, "submit", None))
        for d in plan.decisions:
            if d.changes_at:
                steps.append((d.changes_at, 2, i, "changes", d))
                steps.append((d.resubmitted_at, 3, i, "resubmit", d))  # type: ignore[arg-type]
            steps.append((d.at, 4, i, "decide", d))
        first_approval = min(
            (d.at for d in plan.decisions if d.status in APPROVED_REVIEWS), default=None
        )
        if (
            first_approval is not None
            and plan.first_run_after_days is not None
            and plan.output_type == OutputType.AGGREGATES
        ):
            when = first_approval + timedelta(days=plan.first_run_after_days)
            steps.append((when, 5, i, "run", None))
    steps = sorted((s for s in steps if s[0] <= now), key=lambda s: s[:3])
    approvals: list[tuple[str, str, str, str, datetime]] = []
    history = History(plans, approvals)
    for n, (when, _order, i, kind, d) in enumerate(steps):
        clock.set(when)
        plan = plans[i]
        applicant = seeded.principal(plan.applicant, Role.APPLICANT)
        if kind == "create":
            plan.request_id = requests.create(applicant, _request_in(plan, seeded)).id
        elif kind == "submit":
            out = requests.submit(applicant, plan.request_id)  # type: ignore[arg-type]
            by_org = {o: k for k, o in seeded.orgs.items()}
            plan.reviews = {by_org[r.producer_id]: r.id for r in out.reviews}
        elif kind == "changes":
            reviewer = seeded.principal(d.node, Role.REVIEWER)
            requests.decide(
                reviewer,
                plan.reviews[d.node],
                DecisionIn(
                    status=ReviewStatus.CHANGES_REQUESTED,
                    comment="Préciser la population et les variables demandées.",
                ),
            )
        elif kind == "resubmit":
            requests.resubmit(applicant, plan.reviews[d.node])
        elif kind == "decide":
            reviewer = seeded.principal(d.node, Role.REVIEWER)
            conditions = (
                "Publication des résultats avec mention de l'établissement."
                if d.status == ReviewStatus.APPROVED_WITH_CONDITIONS
                else ""
            )
            requests.decide(
                reviewer,
                plan.reviews[d.node],
                DecisionIn(status=d.status, conditions=conditions, comment="Décision du comité."),
            )
            if d.status in APPROVED_REVIEWS and plan.output_type == OutputType.AGGREGATES:
                project = f"request-{plan.request_id}"
                approvals.append((d.node, project, plan.purpose.value, "aggregates", when))
        elif kind == "run":
            approved = [
                x.node for x in plan.decisions if x.status in APPROVED_REVIEWS and x.at <= when
            ]
            with ctx.uow.write() as dal:
                dal.audit(
                    applicant.actor,
                    "study.run",
                    "request",
                    plan.request_id,
                    {"study": 0, "run": "history", "sites": approved, "partial": False},
                )
            history.runs += 1
        history.played += 1
        if progress:
            progress(n + 1, len(steps))
    return history
