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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from time import perf_counter
from typing import Any

from sqlalchemy import Integer, String, and_, case, cast, distinct, extract, func, or_, select
from sqlalchemy.orm import Session, aliased

from passerelle.access import audit
from passerelle.access.enums import APPROVED_REVIEWS, Domain, OrgType, Purpose, ReviewStatus
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


QUANTILES = (0.5, 0.9)

# Days between two timestamps, per app-database backend (the only expression that differs).
DAYS_BETWEEN: dict[str, Callable[[Any, Any], Any]] = {
    "sqlite": lambda start, end: func.julianday(end) - func.julianday(start),
    "postgresql": lambda start, end: extract("epoch", end - start) / SECONDS_PER_DAY,
}


def ranked_percentile(ranked: dict[int, float], n: int, q: float) -> float | None:
    """`percentile` from the values at 1-based ranks around the position (n - 1) * q."""
    if n == 0:
        return None
    pos = (n - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    a, b = ranked[lo + 1], ranked[hi + 1]
    return a + (b - a) * (pos - lo)


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


def _conditions(filters: Filters, applicant: Any) -> list[Any]:
    """The filters as SQL conditions on AccessRequest and the applicant's organisation."""
    where: list[Any] = [AccessRequest.submitted_at.is_not(None)]
    if filters.actor_type is not None:
        where.append(applicant.type == filters.actor_type)
    if filters.purpose is not None:
        where.append(_mentions(AccessRequest.purpose, filters.purpose.value))
    if filters.start is not None:
        where.append(AccessRequest.submitted_at >= _day_start(filters.start))
    if filters.end is not None:
        where.append(AccessRequest.submitted_at <= _day_end(filters.end))
    return where


def _mentions(column: Any, value: str) -> Any:
    """A JSON list column names `value` (the JSON text holds it in double quotes; the values
    are enum values, never user text, and the LIKE pattern is a bound parameter)."""
    return cast(column, String).like(f'%"{value}"%')


def _aware(value: Any) -> datetime:
    """A timestamp read as text (stored naive in UTC on SQLite, with its offset elsewhere)."""
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def compute(session: Session, filters: Filters, now: datetime) -> Observatory:
    """Aggregates in SQL (portable constructs only), the few per-row things in Python."""
    conn = session.connection()
    applicant = aliased(Organisation)
    producer = aliased(Organisation)
    where = _conditions(filters, applicant)

    def base(*columns: Any) -> Any:
        return (
            select(*columns)
            .select_from(AccessRequest)
            .join(applicant, AccessRequest.organisation_id == applicant.id)
            .where(*where)
        )

    purposes: dict[str, Counter[str]] = defaultdict(Counter)
    domains: dict[str, Counter[str]] = defaultdict(Counter)
    by_actor: Counter[str] = Counter()
    p_cols = [
        func.sum(case((_mentions(AccessRequest.purpose, p.value), 1), else_=0)) for p in Purpose
    ]
    d_cols = [
        func.sum(case((_mentions(AccessRequest.domains, d.value), 1), else_=0)) for d in Domain
    ]
    stmt = base(applicant.type, func.count(), *p_cols, *d_cols).group_by(applicant.type)
    n_p = len(p_cols)
    for row in conn.execute(stmt):
        actor = OrgType(row[0]).value
        by_actor[actor] = int(row[1])
        for p, n in zip(Purpose, row[2 : 2 + n_p], strict=True):
            if n:
                purposes[actor][p.value] = int(n)
        for d, n in zip(Domain, row[2 + n_p :], strict=True):
            if n:
                domains[actor][d.value] = int(n)

    year = extract("year", AccessRequest.submitted_at)
    month = extract("month", AccessRequest.submitted_at)
    months = sorted(
        (f"{int(y):04d}-{int(m):02d}", int(n))
        for y, m, n in conn.execute(base(year, month, func.count()).group_by(year, month))
    )

    sources: dict[str, Counter[str]] = defaultdict(Counter)
    src = (
        base(applicant.type, producer.name, func.count(distinct(AccessRequest.id)))
        .join(RequestDataset, RequestDataset.request_id == AccessRequest.id)
        .join(Dataset, RequestDataset.dataset_id == Dataset.id)
        .join(producer, Dataset.organisation_id == producer.id)
        .group_by(applicant.type, producer.name)
    )
    for otype, name, n in conn.execute(src):
        sources[OrgType(otype).value][name] = int(n)

    decided_values = [s.value for s in DECIDED]
    approved_values = [s.value for s in APPROVED_REVIEWS]
    is_decided = and_(Review.status.in_(decided_values), Review.decided_at.is_not(None))
    is_approved = and_(is_decided, Review.status.in_(approved_values))

    def count(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    reviews = base().join(Review, Review.request_id == AccessRequest.id)
    by_producer = reviews.join(producer, Review.producer_id == producer.id)
    per_producer: dict[str, dict[str, Any]] = {}
    stmt = by_producer.with_only_columns(
        producer.name,
        count(is_decided),
        count(is_approved),
        count(and_(is_decided, Review.decided_at <= Review.due_at)),
        count(
            Review.status.in_([ReviewStatus.IN_REVIEW.value, ReviewStatus.CHANGES_REQUESTED.value])
        ),
        count(and_(Review.status == ReviewStatus.IN_REVIEW.value, Review.due_at < now)),
    ).group_by(producer.name)
    for name, n, approved, within, open_, overdue in conn.execute(stmt):
        per_producer[name] = {
            "n": int(n or 0),
            "approved": int(approved or 0),
            "within": int(within or 0),
            "open": int(open_ or 0),
            "overdue": int(overdue or 0),
            "ranked": {},
        }
    # Delay percentiles in SQL: days between two timestamps is the one expression each backend
    # writes differently (DAYS_BETWEEN); window functions rank each producer's delays and only
    # the ranks around each percentile's position are read back.
    days = DAYS_BETWEEN[conn.dialect.name](Review.started_at, Review.decided_at) - (
        func.coalesce(Review.paused_seconds, 0) / SECONDS_PER_DAY
    )
    ranked = (
        by_producer.with_only_columns(
            producer.name.label("producer"),
            days.label("days"),
            func.row_number().over(partition_by=producer.name, order_by=days).label("rn"),
            func.count().over(partition_by=producer.name).label("n"),
        )
        .where(is_decided)
        .subquery()
    )
    rank0 = ranked.c.rn - 1
    position = [(ranked.c.n - 1) * q for q in QUANTILES]
    near = or_(*[and_(rank0 >= pos - 1, rank0 <= pos + 1) for pos in position])
    stmt = select(ranked.c.producer, ranked.c.days, ranked.c.rn).where(near)
    for name, d, rn in conn.execute(stmt):
        per_producer[name]["ranked"][int(rn)] = max(0.0, float(d))
    actor_decided: Counter[str] = Counter()
    actor_approved: Counter[str] = Counter()
    stmt = reviews.with_only_columns(applicant.type, count(is_decided), count(is_approved))
    for otype, n, approved in conn.execute(stmt.group_by(applicant.type)):
        if n:
            actor_decided[OrgType(otype).value] = int(n)
            actor_approved[OrgType(otype).value] = int(approved or 0)

    delays = []
    for name in sorted(per_producer):
        stats = per_producer[name]
        n = stats["n"]
        delays.append(
            {
                "producer": name,
                "decided": n,
                "median_days": _round(ranked_percentile(stats["ranked"], n, 0.5)),
                "p90_days": _round(ranked_percentile(stats["ranked"], n, 0.9)),
                "within_deadline": round(stats["within"] / n, 4) if n else None,
                "approval_rate": round(stats["approved"] / n, 4) if n else None,
                "open": stats["open"],
                "open_overdue": stats["overdue"],
            }
        )
    first_at = (
        select(
            cast(AuditEntry.object_id, Integer).label("request_id"),
            func.min(AuditEntry.at).label("first_at"),
        )
        .where(AuditEntry.action == FIRST_RESULT_ACTION, AuditEntry.object_type == "request")
        .group_by(AuditEntry.object_id)
        .subquery()
    )
    waits: dict[str, list[float]] = defaultdict(list)
    fr = base(applicant.type, cast(AccessRequest.submitted_at, String), first_at.c.first_at).join(
        first_at, first_at.c.request_id == AccessRequest.id
    )
    for otype, submitted, at in conn.execute(fr):
        days = (_aware(at) - _aware(submitted)).total_seconds() / SECONDS_PER_DAY
        waits[OrgType(otype).value].append(max(0.0, days))
        waits["all"].append(max(0.0, days))
    approvals = [
        {
            "actor_type": a,
            "decided": actor_decided[a],
            "approved": actor_approved[a],
            "approval_rate": round(actor_approved[a] / actor_decided[a], 4),
        }
        for a in sorted(actor_decided)
    ]

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
        requests=sum(by_actor.values()),
        audit_count=head.count,
        audit_head=head.hash,
        computed_at=now,
        purposes=dict(purposes),
        requests_by_actor=by_actor,
        sources=dict(sources),
        domains=dict(domains),
        months=months,
        delays=delays,
        approvals_by_actor=approvals,
        first_result=first_result,
    )


@dataclass
class _Entry:
    result: Observatory
    head: tuple[int, str]
    seconds: float  # how long computing it took
    refreshing: bool = False


class ObservatoryService:
    """Statistics per filter, recomputed when the audit chain has moved (every state change
    appends to it) or after an hour (reviews become overdue with time alone).

    When the last computation for a filter took longer than `SYNC_SECONDS` (a large platform),
    a moved chain does not make the page wait: the previous statistics are served, saying when
    they were computed, while one background thread recomputes them (stale-while-revalidate).
    On a small platform, and for a filter never computed, the page waits for fresh figures.
    """

    MAX_CACHED = 64
    MAX_AGE_SECONDS = 3600.0
    SYNC_SECONDS = 0.25

    def __init__(self, db: Any, clock: Any, background: bool = True) -> None:
        self.db = db
        self.clock = clock
        self.background = background
        self._cache: dict[tuple[Any, ...], _Entry] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def _head(self) -> tuple[int, str]:
        with self.db.read() as s:
            h = audit.head(s)
        return (h.count, h.hash)

    def _compute(self, key: tuple[Any, ...], filters: Filters) -> _Entry:
        started = perf_counter()
        now = self.clock.now()
        with self.db.read() as s:
            head = audit.head(s)
            result = compute(s, filters, now)
        entry = _Entry(result, (head.count, head.hash), perf_counter() - started)
        with self._lock:
            if len(self._cache) >= self.MAX_CACHED:
                self._cache.clear()
            self._cache[key] = entry
        return entry

    def get(self, filters: Filters) -> Observatory:
        key = filters.key()
        head = self._head()
        now = self.clock.now()
        with self._lock:
            entry = self._cache.get(key)
            fresh = (
                entry is not None
                and entry.head == head
                and (now - entry.result.computed_at).total_seconds() < self.MAX_AGE_SECONDS
            )
            if entry is not None and not fresh and self._serve_stale(entry):
                if not entry.refreshing:
                    entry.refreshing = True
                    thread = threading.Thread(
                        target=self._refresh, args=(key, filters), daemon=True
                    )
                    self._threads = [t for t in self._threads if t.is_alive()] + [thread]
                    thread.start()
                return entry.result
        if entry is not None and fresh:
            return entry.result
        return self._compute(key, filters).result

    def _serve_stale(self, entry: _Entry) -> bool:
        return self.background and entry.seconds > self.SYNC_SECONDS

    def _refresh(self, key: tuple[Any, ...], filters: Filters) -> None:
        try:
            self._compute(key, filters)
        finally:
            with self._lock:
                entry = self._cache.get(key)
                if entry is not None:
                    entry.refreshing = False

    def wait(self, timeout: float = 60.0) -> None:
        """Wait for background recomputations (tests and benchmarks)."""
        for thread in list(self._threads):
            thread.join(timeout)
