"""Usage and delay statistics, live from the app database (public; no login).

What it answers, for the requests submitted in the chosen period (drafts are never counted):

- the share of each purpose within each actor type (the question of the 2025 survey of 155
  French health organisations): a request may name several purposes; shares are of the
  purpose mentions of that actor type, so each actor type's shares add up to 100 %;
- the data sources (producers) and CDM domains requested per actor type;
- submitted requests per month;
- decision delays per producer: days from the review's start to the decision, not counting
  time paused while changes were asked for; median, 90th percentile, share decided within the
  deadline; open reviews past their deadline;
- approval rates (approved, with or without conditions, among decided reviews) per producer
  and per actor type;
- time from submission to the first study result (the first `study.run` entry of the audit
  chain for that request), median and 90th percentile per actor type;
- the audit chain's length and head hash.

Applicant organisations are never named: only their actor type. Everything is computed from
what the access package stores; the result is cached until the audit chain moves (every
state change appends to it, so the cache is never stale).
"""

from __future__ import annotations

import math
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from passerelle.access import audit
from passerelle.access.enums import APPROVED_REVIEWS, OrgType, Purpose, ReviewStatus
from passerelle.access.models import (
    AccessRequest,
    AuditEntry,
    Dataset,
    Organisation,
    RequestDataset,
    Review,
)

FIRST_RESULT_ACTION = "study.run"
DECIDED = frozenset(
    {ReviewStatus.APPROVED, ReviewStatus.APPROVED_WITH_CONDITIONS, ReviewStatus.REJECTED}
)
TOP_SOURCES = 10
SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class Filters:
    actor_type: OrgType | None = None
    purpose: Purpose | None = None
    start: date | None = None  # submitted on or after
    end: date | None = None  # submitted on or before

    def key(self) -> tuple[Any, ...]:
        return (self.actor_type, self.purpose, self.start, self.end)


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None when empty."""
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass
class Table:
    """One exportable table: column names and rows (also what the page shows)."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)


@dataclass
class Observatory:
    filters: Filters
    requests: int
    audit_count: int
    audit_head: str
    computed_at: datetime
    # actor type -> purpose -> mentions
    purposes: dict[str, Counter[str]]
    requests_by_actor: Counter[str]
    sources: dict[str, Counter[str]]  # actor type -> producer name -> requests
    domains: dict[str, Counter[str]]  # actor type -> domain -> requests
    months: list[tuple[str, int]]
    delays: list[dict[str, Any]]  # per producer
    approvals_by_actor: list[dict[str, Any]]
    first_result: list[dict[str, Any]]  # per actor type, plus "all"

    def purpose_shares(self) -> list[tuple[str, dict[str, float]]]:
        out = []
        for actor in sorted(self.purposes, key=lambda a: -self.requests_by_actor[a]):
            c = self.purposes[actor]
            total = sum(c.values()) or 1
            out.append((actor, {p: n / total for p, n in c.items()}))
        return out

    def tables(self) -> dict[str, Table]:
        purposes = Table(
            "Share of each purpose within each actor type",
            ["actor_type", "purpose", "requests", "share"],
        )
        for actor, shares in self.purpose_shares():
            for p in Purpose:
                if p.value in shares:
                    purposes.rows.append(
                        [
                            actor,
                            p.value,
                            self.purposes[actor][p.value],
                            round(shares[p.value], 4),
                        ]
                    )
        sources = Table(
            "Data sources requested per actor type", ["actor_type", "producer", "requests"]
        )
        for actor in sorted(self.sources):
            for name, n in self.sources[actor].most_common(TOP_SOURCES):
                sources.rows.append([actor, name, n])
        domains = Table(
            "CDM domains requested per actor type", ["actor_type", "domain", "requests"]
        )
        for actor in sorted(self.domains):
            for name, n in self.domains[actor].most_common():
                domains.rows.append([actor, name, n])
        months = Table("Requests submitted per month", ["month", "requests"])
        months.rows = [[m, n] for m, n in self.months]
        delay_cols = [
            "producer",
            "decided",
            "median_days",
            "p90_days",
            "within_deadline",
            "approval_rate",
            "open",
            "open_overdue",
        ]
        delays = Table("Decision delays per producer", delay_cols)
        delays.rows = [[d[c] for c in delay_cols] for d in self.delays]
        appr_cols = ["actor_type", "decided", "approved", "approval_rate"]
        approvals = Table("Approval rate per actor type", appr_cols)
        approvals.rows = [[d[c] for c in appr_cols] for d in self.approvals_by_actor]
        fr_cols = ["actor_type", "requests_with_result", "median_days", "p90_days"]
        first = Table("Time from submission to the first result", fr_cols)
        first.rows = [[d[c] for c in fr_cols] for d in self.first_result]
        return {
            "purposes": purposes,
            "sources": sources,
            "domains": domains,
            "months": months,
            "delays": delays,
            "approvals": approvals,
            "first_result": first,
        }


def _day_start(d: date) -> datetime:
    return datetime.combine(d, time.min, tzinfo=UTC)


def _day_end(d: date) -> datetime:
    return datetime.combine(d, time.max, tzinfo=UTC)


def _round(v: float | None, digits: int = 1) -> float | None:
    return None if v is None else round(v, digits)


def compute(session: Session, filters: Filters, now: datetime) -> Observatory:
    stmt = (
        select(
            AccessRequest.id,
            Organisation.type,
            AccessRequest.purpose,
            AccessRequest.domains,
            AccessRequest.submitted_at,
        )
        .join(Organisation, AccessRequest.organisation_id == Organisation.id)
        .where(AccessRequest.submitted_at.is_not(None))
    )
    if filters.actor_type is not None:
        stmt = stmt.where(Organisation.type == filters.actor_type)
    if filters.start is not None:
        stmt = stmt.where(AccessRequest.submitted_at >= _day_start(filters.start))
    if filters.end is not None:
        stmt = stmt.where(AccessRequest.submitted_at <= _day_end(filters.end))

    actor_of: dict[int, str] = {}
    submitted: dict[int, datetime] = {}
    purposes: dict[str, Counter[str]] = defaultdict(Counter)
    by_actor: Counter[str] = Counter()
    domains: dict[str, Counter[str]] = defaultdict(Counter)
    months: Counter[str] = Counter()
    want = filters.purpose.value if filters.purpose else None
    for rid, otype, purpose, doms, sub_at in session.execute(stmt):
        plist = list(purpose or [])
        if want is not None and want not in plist:
            continue
        actor = OrgType(otype).value
        actor_of[rid] = actor
        submitted[rid] = sub_at
        by_actor[actor] += 1
        purposes[actor].update(set(plist))
        domains[actor].update(set(doms or []))
        months[sub_at.strftime("%Y-%m")] += 1

    sources: dict[str, Counter[str]] = defaultdict(Counter)
    src = (
        select(RequestDataset.request_id, Organisation.name)
        .join(Dataset, RequestDataset.dataset_id == Dataset.id)
        .join(Organisation, Dataset.organisation_id == Organisation.id)
    )
    seen: set[tuple[int, str]] = set()
    for rid, producer in session.execute(src):
        if rid in actor_of and (rid, producer) not in seen:
            seen.add((rid, producer))
            sources[actor_of[rid]][producer] += 1

    per_producer: dict[str, dict[str, Any]] = {}
    actor_decided: Counter[str] = Counter()
    actor_approved: Counter[str] = Counter()
    rev = select(
        Review.request_id,
        Organisation.name,
        Review.status,
        Review.started_at,
        Review.decided_at,
        Review.due_at,
        Review.paused_seconds,
    ).join(Organisation, Review.producer_id == Organisation.id)
    for rid, producer, status, started, decided, due, paused in session.execute(rev):
        if rid not in actor_of:
            continue
        p = per_producer.setdefault(
            producer, {"delays": [], "within": 0, "approved": 0, "open": 0, "overdue": 0}
        )
        status = ReviewStatus(status)
        if status in DECIDED and decided is not None:
            days = ((decided - started).total_seconds() - (paused or 0)) / SECONDS_PER_DAY
            p["delays"].append(max(0.0, days))
            p["within"] += decided <= due
            approved = status in APPROVED_REVIEWS
            p["approved"] += approved
            actor_decided[actor_of[rid]] += 1
            actor_approved[actor_of[rid]] += approved
        elif status == ReviewStatus.IN_REVIEW or status == ReviewStatus.CHANGES_REQUESTED:
            p["open"] += 1
            p["overdue"] += status == ReviewStatus.IN_REVIEW and due < now
    delays = []
    for producer in sorted(per_producer):
        p = per_producer[producer]
        n = len(p["delays"])
        delays.append(
            {
                "producer": producer,
                "decided": n,
                "median_days": _round(percentile(p["delays"], 0.5)),
                "p90_days": _round(percentile(p["delays"], 0.9)),
                "within_deadline": round(p["within"] / n, 4) if n else None,
                "approval_rate": round(p["approved"] / n, 4) if n else None,
                "open": p["open"],
                "open_overdue": p["overdue"],
            }
        )
    approvals = [
        {
            "actor_type": a,
            "decided": actor_decided[a],
            "approved": actor_approved[a],
            "approval_rate": round(actor_approved[a] / actor_decided[a], 4),
        }
        for a in sorted(actor_decided)
    ]

    first_at = (
        select(AuditEntry.object_id, func.min(AuditEntry.at))
        .where(AuditEntry.action == FIRST_RESULT_ACTION, AuditEntry.object_type == "request")
        .group_by(AuditEntry.object_id)
    )
    waits: dict[str, list[float]] = defaultdict(list)
    for oid, at in session.execute(first_at):
        try:
            rid = int(oid)
        except ValueError:
            continue
        if rid not in actor_of:
            continue
        first = datetime.fromisoformat(at)
        days = (first - submitted[rid]).total_seconds() / SECONDS_PER_DAY
        waits[actor_of[rid]].append(max(0.0, days))
        waits["all"].append(max(0.0, days))
    first_result = [
        {
            "actor_type": a,
            "requests_with_result": len(v),
            "median_days": _round(percentile(v, 0.5)),
            "p90_days": _round(percentile(v, 0.9)),
        }
        for a, v in sorted(waits.items(), key=lambda kv: (kv[0] == "all", kv[0]))
    ]

    head = audit.head(session)
    return Observatory(
        filters=filters,
        requests=len(actor_of),
        audit_count=head.count,
        audit_head=head.hash,
        computed_at=now,
        purposes=dict(purposes),
        requests_by_actor=by_actor,
        sources=dict(sources),
        domains=dict(domains),
        months=sorted(months.items()),
        delays=delays,
        approvals_by_actor=approvals,
        first_result=first_result,
    )


class ObservatoryService:
    """Statistics for a filter, recomputed only when the audit chain has moved."""

    MAX_CACHED = 64
    # Open reviews become overdue as time passes without any audit entry: recompute hourly.
    MAX_AGE_SECONDS = 3600.0

    def __init__(self, db: Any, clock: Any) -> None:
        self.db = db
        self.clock = clock
        self._cache: dict[tuple[Any, ...], Observatory] = {}
        self._lock = threading.Lock()

    def get(self, filters: Filters) -> Observatory:
        now = self.clock.now()
        with self.db.read() as s:
            head = audit.head(s)
            key = (head.count, head.hash, *filters.key())
            with self._lock:
                hit = self._cache.get(key)
            if hit is not None and (now - hit.computed_at).total_seconds() < self.MAX_AGE_SECONDS:
                return hit
            result = compute(s, filters, now)
        with self._lock:
            if len(self._cache) >= self.MAX_CACHED:
                self._cache.clear()
            self._cache[key] = result
        return result
