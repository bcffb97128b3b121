"""The privacy-budget ledger: epsilon spent per applicant per period and per project.

Three tables, in their own SQLAlchemy MetaData so they can live in the app database (SQLite
by default, PostgreSQL in production) or anywhere else (`create_ledger_tables(engine)`, or
`alembic_upgrade(op)` in a migration):

- ``privacy_budget_account``: epsilon spent per (scope, subject, period); updating it first
  serialises concurrent charges (row lock), so the budget is never overspent;

- ``privacy_budget_spend``: one row per charged release (scope applicant|project, subject,
  period, epsilon, delta, query hash, time);
- ``privacy_noisy_answer``: the released answer of each (scope, subject, query hash), unique.
  Asking the same query again returns the stored answer without spending anything, so
  averaging repeated queries learns nothing new.

Feasibility counts charge the applicant's budget for the current period (calendar day, ISO
week, month or year); DP-mode studies of an approved project charge the project's budget,
which never renews. A spent budget is refused with `BudgetExhausted`, saying what was spent,
what the query needs and when the budget renews.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, cast

import orjson
from sqlalchemy import (
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from passerelle.errors import UserError
from passerelle.privacy import dp, rules
from passerelle.privacy.disclosure import protect, released_dict
from passerelle.privacy.policy import BudgetPeriod, DPMode, Policy
from passerelle.query.result import AggregateTable, ResultColumn, StudyResult

metadata = MetaData()


class Base(DeclarativeBase):
    metadata = metadata


class Scope(StrEnum):
    applicant = "applicant"  # feasibility counts, budget per period
    project = "project"  # DP-mode studies of an approved project, one budget


class BudgetSpend(Base):
    __tablename__ = "privacy_budget_spend"
    __table_args__ = (
        Index("ix_privacy_budget_spend_scope_subject_period", "scope", "subject", "period"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(200))
    period: Mapped[str] = mapped_column(String(16))  # "2026-11", "2026-W48", ..., "all"
    epsilon: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    query_hash: Mapped[str] = mapped_column(String(64))
    policy: Mapped[str] = mapped_column(String(140))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BudgetAccount(Base):
    """Epsilon spent per (scope, subject, period): the row that serialises concurrent charges."""

    __tablename__ = "privacy_budget_account"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    subject: Mapped[str] = mapped_column(String(200), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    spent: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class NoisyAnswer(Base):
    __tablename__ = "privacy_noisy_answer"
    __table_args__ = (
        UniqueConstraint(
            "scope",
            "subject",
            "query_hash",
            name="uq_privacy_noisy_answer_scope_subject_query_hash",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(200))
    query_hash: Mapped[str] = mapped_column(String(64))
    answer: Mapped[str] = mapped_column(Text)  # JSON
    epsilon: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def create_ledger_tables(engine: Engine) -> None:
    """Create the ledger's tables on `engine` if they are absent (tests, embedded default)."""
    metadata.create_all(engine)


def alembic_upgrade(op: Any) -> None:
    """The ledger's tables as Alembic operations, for the app database's migrations:
    ``from passerelle.privacy.ledger import alembic_upgrade`` then ``alembic_upgrade(op)`` in a
    revision's ``upgrade()`` (and `alembic_downgrade(op)` in ``downgrade()``)."""
    import sqlalchemy as sa

    op.create_table(
        "privacy_budget_spend",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("delta", sa.Float(), nullable=False),
        sa.Column("query_hash", sa.String(64), nullable=False),
        sa.Column("policy", sa.String(140), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_privacy_budget_spend_scope_subject_period",
        "privacy_budget_spend",
        ["scope", "subject", "period"],
    )
    op.create_table(
        "privacy_budget_account",
        sa.Column("scope", sa.String(16), primary_key=True),
        sa.Column("subject", sa.String(200), primary_key=True),
        sa.Column("period", sa.String(16), primary_key=True),
        sa.Column("spent", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "privacy_noisy_answer",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("query_hash", sa.String(64), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "scope",
            "subject",
            "query_hash",
            name="uq_privacy_noisy_answer_scope_subject_query_hash",
        ),
    )


def alembic_downgrade(op: Any) -> None:
    op.drop_table("privacy_budget_account")
    op.drop_table("privacy_noisy_answer")
    op.drop_index("ix_privacy_budget_spend_scope_subject_period", "privacy_budget_spend")
    op.drop_table("privacy_budget_spend")


class BudgetExhausted(UserError):
    """The applicant's or project's epsilon budget cannot pay for this query."""

    exit_code = 3
    http_status = 429


class DPNotAllowed(UserError):
    http_status = 403


def query_hash(query: Any) -> str:
    """sha256 of the query's canonical JSON (sorted keys): the cache key with the subject."""
    return hashlib.sha256(orjson.dumps(query, option=orjson.OPT_SORT_KEYS)).hexdigest()


def period_of(when: datetime, period: BudgetPeriod) -> tuple[str, date]:
    """The period label containing `when` and the first day of the next period."""
    d = when.date()
    if period is BudgetPeriod.day:
        return d.isoformat(), d + timedelta(days=1)
    if period is BudgetPeriod.week:
        year, week, weekday = d.isocalendar()
        return f"{year}-W{week:02d}", d + timedelta(days=8 - weekday)
    if period is BudgetPeriod.month:
        nxt = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
        return f"{d.year}-{d.month:02d}", nxt
    return str(d.year), date(d.year + 1, 1, 1)


@dataclass(frozen=True)
class FeasibilityAnswer:
    value: int | None  # None when below the policy's threshold
    display: str  # "1 235" style value or "<11"
    flags: frozenset[str]
    epsilon: float  # what this answer cost when it was first released
    cached: bool  # True: the same query was answered before; nothing was spent now
    remaining: float  # the applicant's budget left in the current period
    policy: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "display": self.display,
            "flags": sorted(self.flags),
            "epsilon": self.epsilon,
            "cached": self.cached,
            "remaining": self.remaining,
            "policy": self.policy,
        }


class BudgetLedger:
    """Budget accounting and the noisy-answer cache over one SQLAlchemy engine."""

    def __init__(self, engine: Engine, policy: Policy, clock: Callable[[], datetime] | None = None):
        self.engine = engine
        self.policy = policy
        self.clock = clock or (lambda: datetime.now(UTC))

    # -- accounting ------------------------------------------------------------------------
    def spent(self, scope: Scope, subject: str, period: str) -> float:
        with Session(self.engine) as s:
            total = s.scalar(
                select(func.coalesce(func.sum(BudgetSpend.epsilon), 0.0)).where(
                    BudgetSpend.scope == scope.value,
                    BudgetSpend.subject == subject,
                    BudgetSpend.period == period,
                )
            )
        return float(total or 0.0)

    def remaining_for_applicant(self, applicant: str) -> float:
        label, _ = period_of(self.clock(), self.policy.dp.period)
        return self.policy.dp.applicant_budget - self.spent(Scope.applicant, applicant, label)

    def remaining_for_project(self, project: str) -> float:
        return self.policy.dp.project_budget - self.spent(Scope.project, project, "all")

    def _cached(self, scope: Scope, subject: str, qhash: str) -> NoisyAnswer | None:
        with Session(self.engine) as s:
            return s.scalar(
                select(NoisyAnswer).where(
                    NoisyAnswer.scope == scope.value,
                    NoisyAnswer.subject == subject,
                    NoisyAnswer.query_hash == qhash,
                )
            )

    def _charge_and_store(
        self,
        scope: Scope,
        subject: str,
        period: str,
        budget: float,
        epsilon: float,
        delta: float,
        qhash: str,
        answer: dict[str, Any],
        renews: str,
    ) -> bool:
        """Charge epsilon and store the answer in one transaction; False if already cached.

        The account row of (scope, subject, period) is updated first: its row lock (or
        SQLite's write lock) serialises concurrent charges, so two requests can never both
        pass the budget check with the same remaining budget.
        """
        for _ in range(3):
            with Session(self.engine) as s:
                try:
                    return self._charge(
                        s, scope, subject, period, budget, epsilon, delta, qhash, answer, renews
                    )
                except IntegrityError:  # a concurrent first charge, or the same query meanwhile
                    s.rollback()
                    if self._cached(scope, subject, qhash) is not None:
                        return False
        raise BudgetExhausted(f"privacy budget of {scope.value} {subject!r} is busy; try again")

    def _charge(
        self,
        s: Session,
        scope: Scope,
        subject: str,
        period: str,
        budget: float,
        epsilon: float,
        delta: float,
        qhash: str,
        answer: dict[str, Any],
        renews: str,
    ) -> bool:
        now = self.clock()
        where = (
            BudgetAccount.scope == scope.value,
            BudgetAccount.subject == subject,
            BudgetAccount.period == period,
        )
        # An ORM UPDATE returns a CursorResult (typed as the generic Result).
        updated = cast(
            CursorResult[Any],
            s.execute(
                update(BudgetAccount)
                .where(*where)
                .values(spent=BudgetAccount.spent + epsilon, updated_at=now)
            ),
        )
        if updated.rowcount == 0:
            s.add(
                BudgetAccount(
                    scope=scope.value, subject=subject, period=period, spent=epsilon, updated_at=now
                )
            )
            s.flush()
        spent = float(s.scalar(select(BudgetAccount.spent).where(*where)) or 0.0)
        if spent > budget + 1e-12:
            s.rollback()
            raise BudgetExhausted(
                f"privacy budget spent: {scope.value} {subject!r} has used epsilon "
                f"{spent - epsilon:g} of {budget:g}{'' if period == 'all' else f' for {period}'}; "
                f"this query needs {epsilon:g}. {renews}"
            )
        s.add(
            BudgetSpend(
                scope=scope.value,
                subject=subject,
                period=period,
                epsilon=epsilon,
                delta=delta,
                query_hash=qhash,
                policy=self.policy.label,
                created_at=now,
            )
        )
        s.add(
            NoisyAnswer(
                scope=scope.value,
                subject=subject,
                query_hash=qhash,
                answer=orjson.dumps(answer).decode(),
                epsilon=epsilon,
                created_at=now,
            )
        )
        s.commit()
        return True

    # -- feasibility counts ----------------------------------------------------------------
    def feasibility_count(
        self, applicant: str, query: Any, true_count: Callable[[], int]
    ) -> FeasibilityAnswer:
        """A noisy count for `applicant`: the cached answer if asked before, else a new one.

        `true_count` is called only when a new release is needed and the budget allows it.
        """
        pol = self.policy
        if not pol.allows_output("feasibility"):
            raise DPNotAllowed(f"policy {pol.label} does not release feasibility counts")
        qhash = query_hash({"feasibility": query})
        label, renews_on = period_of(self.clock(), pol.dp.period)
        cached = self._cached(Scope.applicant, applicant, qhash)
        if cached is None:
            eps = pol.dp.feasibility_epsilon
            if self.remaining_for_applicant(applicant) + 1e-12 < eps:
                self._refuse(applicant, label, eps, renews_on)
            noisy = dp.noisy_count(
                true_count(), epsilon=eps, mechanism=pol.dp.mechanism, delta=pol.dp.delta
            )
            answer = _feasibility_answer(max(0, noisy), pol)
            stored = self._charge_and_store(
                Scope.applicant,
                applicant,
                label,
                pol.dp.applicant_budget,
                eps,
                pol.dp.delta if pol.dp.mechanism == "gaussian" else 0.0,
                qhash,
                answer,
                f"The budget renews on {renews_on.isoformat()}.",
            )
            if stored:
                return _answer_from(answer, eps, False, self.remaining_for_applicant(applicant))
            cached = self._cached(Scope.applicant, applicant, qhash)
            assert cached is not None
        return _answer_from(
            orjson.loads(cached.answer),
            cached.epsilon,
            True,
            self.remaining_for_applicant(applicant),
        )

    def _refuse(self, applicant: str, label: str, eps: float, renews_on: date) -> None:
        spent = self.spent(Scope.applicant, applicant, label)
        raise BudgetExhausted(
            f"privacy budget spent: applicant {applicant!r} has used epsilon {spent:g} of "
            f"{self.policy.dp.applicant_budget:g} for {label}; a feasibility count needs "
            f"{eps:g}. The budget renews on {renews_on.isoformat()}."
        )

    # -- DP mode for approved projects ------------------------------------------------------
    def project_study(self, project: str, study: Any, result: StudyResult) -> StudyResult:
        """`result` released in DP mode, charged to the project's budget (cached per study)."""
        pol = self.policy
        if pol.dp.mode is DPMode.off:
            raise DPNotAllowed(f"policy {pol.label} does not allow DP mode")
        qhash = query_hash({"study": study})
        cached = self._cached(Scope.project, project, qhash)
        if cached is None:
            eps = pol.dp.study_epsilon
            if self.remaining_for_project(project) + 1e-12 < eps:
                raise BudgetExhausted(
                    f"privacy budget spent: project {project!r} has used epsilon "
                    f"{self.spent(Scope.project, project, 'all'):g} of {pol.dp.project_budget:g}"
                    f"; a DP study needs {eps:g}. A project's budget does not renew."
                )
            parts = max(1, sum(1 for t in result.tables for c in t.columns if c.kind == "count"))
            per_cell = eps / parts

            def noise(value: int, sensitivity: int) -> int:
                return dp.noisy_count(
                    value,
                    epsilon=per_cell,
                    sensitivity=sensitivity,
                    mechanism=pol.dp.mechanism,
                    delta=pol.dp.delta,
                )

            released = protect(result, pol, noise=noise)
            answer = _result_to_json(released)
            if self._charge_and_store(
                Scope.project,
                project,
                "all",
                pol.dp.project_budget,
                eps,
                pol.dp.delta if pol.dp.mechanism == "gaussian" else 0.0,
                qhash,
                answer,
                "A project's budget does not renew.",
            ):
                return released
            cached = self._cached(Scope.project, project, qhash)
            assert cached is not None
        return _result_from_json(orjson.loads(cached.answer))


def _feasibility_answer(noisy: int, pol: Policy) -> dict[str, Any]:
    flags = {rules.NOISY}
    if rules.below_threshold(noisy, pol.min_cell):
        return {
            "value": None,
            "display": pol.suppressed_display,
            "flags": sorted(flags | {rules.SUPPRESSED, rules.PRIMARY}),
            "policy": pol.label,
        }
    value = rules.round_to_base(noisy, pol.rounding)
    if pol.rounding > 1:
        flags.add(rules.ROUNDED)
    return {"value": value, "display": str(value), "flags": sorted(flags), "policy": pol.label}


def _answer_from(answer: dict[str, Any], eps: float, cached: bool, remaining: float):
    return FeasibilityAnswer(
        value=answer["value"],
        display=answer["display"],
        flags=frozenset(answer["flags"]),
        epsilon=eps,
        cached=cached,
        remaining=max(0.0, remaining),
        policy=answer["policy"],
    )


def _result_to_json(result: StudyResult) -> dict[str, Any]:
    out = released_dict(result)
    for t, a in zip(result.tables, out["analyses"], strict=True):
        a["types"] = [c.type for c in t.columns]
    return out


def _result_from_json(data: dict[str, Any]) -> StudyResult:
    tables = []
    for a in data["analyses"]:
        kinds = a["column_kinds"]
        columns = tuple(
            ResultColumn(n, kinds[n], ty) for n, ty in zip(a["columns"], a["types"], strict=True)
        )
        flags = {(ri, c): frozenset(f) for ri, row in enumerate(a["flags"]) for c, f in row.items()}
        rows = [tuple(r) for r in a["rows"]]
        tables.append(AggregateTable(a["name"], a["analysis"], columns, rows, flags))
    return StudyResult(data["study"], data["engine"], tables, policy=data["policy"])
