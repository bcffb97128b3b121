"""The base compiler: study model -> sqlglot expressions -> SQL text for one dialect.

Shared logic lives in the cohort and analysis mixins; a dialect subclass overrides only the
small named methods below (date arithmetic, year/month, floor division, the double type) and
names the sqlglot dialect it writes. The base versions use sqlglot's dialect-neutral
expressions (``DateAdd``, ``DateDiff``, ``Year``...), which sqlglot transpiles to any dialect
it writes (tsql, bigquery, snowflake, ...).

The cohort is computed once per study run: `plan` returns a `StudySQL`, the statements that
materialise the cohort as a session temporary table (``tables``, a dialect's `create_table`),
one statement per analysis reading that table (in the study's order), and the statements
dropping the tables (``drop``). A dialect whose planner inlines every CTE (Spark: a CTE read
twice is computed twice) sets `materialise_shared`: each cohort CTE that two later queries
read becomes a temporary table of its own, created first. An attrition table needs every candidate with its
per-step flags, not the final cohort, so its statement stays self-contained (``WITH`` the
cohort CTEs up to ``flagged``). `script` prints the whole plan, separated by ``;``: it runs
as is in one session of the dialect's engine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import ClassVar

from sqlglot import exp

from passerelle.query import model as m
from passerelle.query.compiler import sql as q
from passerelle.query.compiler.analyses import AnalysisCompiler
from passerelle.query.compiler.cohort import FINAL, needs_period
from passerelle.query.compiler.ctes import Ctes

TableNamer = Callable[[str], str]
# The cohort table's name in printed scripts; engines use a fresh name per run.
COHORT_TABLE = "study_cohort"


def reads_cohort(analysis: m.Analysis) -> bool:
    """Whether the analysis's statement reads the materialised cohort (attrition does not)."""
    return not isinstance(analysis, m.Attrition)


@dataclass(frozen=True)
class StudySQL:
    """A study's statements, in the order they run in one session."""

    cohort_table: str
    # the temporary tables, in order, the cohort table last; none when no analysis reads it
    tables: list[TempTable]
    analyses: list[tuple[m.Analysis, str]]
    drop: list[str]  # run after the analyses, also when one failed


@dataclass(frozen=True)
class TempTable:
    name: str
    create: str  # the dialect's statement creating it
    query: str  # the SELECT it holds


def _reads(query: exp.Expression | exp.Query, names: Collection[str]) -> list[str]:
    """The CTEs of `names` that `query` reads (unqualified table references)."""
    return [t.name for t in query.find_all(exp.Table) if not t.args.get("db") and t.name in names]


class BaseCompiler(AnalysisCompiler):
    """Compiles a Study for one sqlglot dialect. `qualify` maps a CDM table name to the name
    the engine's SQL uses (a store's `qualified`); by default the bare table name."""

    dialect: ClassVar[str] = ""
    # Whether cohort CTEs read by two later queries become temporary tables of their own.
    materialise_shared: ClassVar[bool] = False

    def __init__(
        self,
        qualify: TableNamer | None = None,
        dialect: str | None = None,
        cohort_table: str = COHORT_TABLE,
    ) -> None:
        self.qualify = qualify
        self.write_dialect = dialect if dialect is not None else self.dialect
        self.cohort_table = cohort_table

    # -- small named methods a dialect overrides ---------------------------------------------
    def date_add(self, d: exp.Expression, days: int) -> exp.Expression:
        """The date `days` days after date `d` (a DATE)."""
        if days == 0:
            return d
        return exp.DateAdd(this=d, expression=q.num(days), unit=exp.var("DAY"))

    def day_diff(self, later: exp.Expression, earlier: exp.Expression) -> exp.Expression:
        """Whole days from `earlier` to `later` (both DATEs), as an integer."""
        return exp.DateDiff(this=later, expression=earlier, unit=exp.var("DAY"))

    def year(self, d: exp.Expression) -> exp.Expression:
        return exp.Year(this=d)

    def month(self, d: exp.Expression) -> exp.Expression:
        return exp.Month(this=d)

    def floor_div(self, e: exp.Expression, n: int) -> exp.Expression:
        """floor(e / n) for an integer e (Python's //), also for negative e."""
        return exp.cast(exp.Floor(this=self.to_double(e) / q.num(n)), q.BIGINT)

    def to_double(self, e: exp.Expression) -> exp.Expression:
        return exp.cast(e, q.DOUBLE)

    # -- tables ------------------------------------------------------------------------------
    def table(self, name: str, alias: str) -> exp.Table:
        qualified = self.qualify(name) if self.qualify else name
        t = exp.to_table(qualified, dialect=self.write_dialect or None)
        t.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
        return t

    # -- the cohort table --------------------------------------------------------------------
    def create_table(self, name: str, query: exp.Query) -> exp.Expression:
        """The statement creating the session temporary table `name` from `query`."""
        return exp.Create(
            this=exp.to_table(name),
            kind="TABLE",
            expression=query,
            properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
        )

    def drop_table(self, name: str) -> exp.Expression:
        return exp.Drop(tables=[exp.to_table(name)], kind="TABLE", exists=True)

    def cohort_tables(self, study: m.Study) -> list[tuple[str, exp.Query]]:
        """(temporary table, query) in creation order; the last is `cohort_table`, the final
        entries' `cohort_columns`. Without `materialise_shared`, only that one."""
        ctes = Ctes()
        self.cohort(ctes, study)
        final = q.select(*[q.col(c) for c in self.cohort_columns(study)]).from_(FINAL, copy=False)
        if not self.materialise_shared:
            return [(self.cohort_table, ctes.attach(final))]
        queries = dict(ctes.items)
        deps = {n: _reads(query, queries) for n, query in ctes.items}
        counts = Counter([d for n in deps for d in deps[n]] + _reads(final, queries))
        shared = {n: f"{self.cohort_table}_{n}" for n, _ in ctes.items if counts[n] > 1}

        def standalone(query: exp.Query) -> exp.Query:
            """`query` WITH the CTEs it needs, reading the shared ones' tables instead."""
            need: set[str] = set()
            todo = _reads(query, queries)
            while todo:
                n = todo.pop()
                if n not in need and n not in shared:
                    need.add(n)
                    todo.extend(deps[n])
            sub = Ctes()
            for n, cte in ctes.items:
                if n in need:
                    sub.add(n, cte.copy())
            out = sub.attach(query.copy())
            for t in list(out.find_all(exp.Table)):
                if not t.args.get("db") and t.name in shared:
                    if not t.alias:
                        t.set("alias", exp.TableAlias(this=exp.to_identifier(t.name)))
                    t.set("this", exp.to_identifier(shared[t.name]))
            return out

        tables = [(shared[n], standalone(query)) for n, query in ctes.items if n in shared]
        return [*tables, (self.cohort_table, standalone(final))]

    def cohort_columns(self, study: m.Study) -> list[str]:
        """The columns of ``cohort_entries`` the analyses read (and nothing else)."""
        cols = ["person_id", "entry_no", "index_date", "gender_concept_id", "age"]
        if study.cohort.exit is not None:
            cols.append("exit_date")
        if needs_period(study):
            cols += ["op_start", "op_end"]
        dims = {d.kind for a in study.analyses for d in getattr(a, "by", ())}
        if dims & {m.DimensionKind.SITE, m.DimensionKind.VISIT_TYPE}:
            cols.append("visit_id")
        if m.DimensionKind.ENTRY_CONCEPT in dims:
            cols.append("concept_id")
        extras, person_extras = self.entry_extras(study)
        return cols + [f"x_{x}" for x in extras] + [f"p_{x}" for x in person_extras]

    def cohort_query(self, study: m.Study, columns: Sequence[exp.Expression]) -> exp.Query:
        """``WITH`` the cohort CTEs, the final entries' `columns`."""
        ctes = Ctes()
        self.cohort(ctes, study)
        return ctes.attach(q.select(*columns).from_(FINAL, copy=False))

    def members(self, study: m.Study) -> exp.Query:
        """One row per final cohort entry: person_id, index_date, exit_date (NULL without an
        exit rule), ordered by person and index date."""
        exit_date = q.col("exit_date") if study.cohort.exit is not None else q.null(q.DATE)
        query = self.cohort_query(
            study,
            [
                q.alias(q.col("person_id"), "person_id"),
                q.alias(q.col("index_date"), "index_date"),
                q.alias(exit_date, "exit_date"),
            ],
        )
        return query.order_by(q.col("person_id"), q.col("index_date"), copy=False)

    # -- statements --------------------------------------------------------------------------
    def statement(self, study: m.Study, analysis: m.Analysis) -> exp.Query:
        """The analysis's statement: it reads `cohort_table`, except attrition."""
        ctes = Ctes()
        flags: list[exp.Expression] = []
        if not reads_cohort(analysis):
            flags = self.cohort(ctes, study, flagged=True)
        final = self.analysis(analysis, ctes, study, flags)
        return ctes.attach(final)

    def sql(self, e: exp.Expression | exp.Query, pretty: bool = False) -> str:
        return e.sql(dialect=self.write_dialect or None, pretty=pretty)

    def statements(self, study: m.Study, pretty: bool = False) -> list[tuple[m.Analysis, str]]:
        """One SQL statement per analysis, in the study's order (after `plan`'s ``create``)."""
        return [(a, self.sql(self.statement(study, a), pretty)) for a in study.analyses]

    def plan(self, study: m.Study, pretty: bool = False) -> StudySQL:
        if not any(reads_cohort(a) for a in study.analyses):
            return StudySQL(self.cohort_table, [], self.statements(study, pretty), [])
        tables = self.cohort_tables(study)
        return StudySQL(
            self.cohort_table,
            [
                TempTable(
                    name, self.sql(self.create_table(name, query), pretty), self.sql(query, pretty)
                )
                for name, query in tables
            ],
            self.statements(study, pretty),
            [self.sql(self.drop_table(name), pretty) for name, _ in reversed(tables)],
        )

    def script(self, study: m.Study) -> str:
        plan = self.plan(study, pretty=True)
        parts = []
        for t in plan.tables:
            what = "the cohort" if t.name == plan.cohort_table else "a step read twice"
            parts.append(f"-- {what}, once per run\n{t.create};\n")
        for i, (a, sql) in enumerate(plan.analyses, start=1):
            parts.append(f"-- analysis {i}: {m.analysis_kind(a)}\n{sql};\n")
        if plan.drop:
            parts.append("-- after the analyses\n" + "".join(f"{d};\n" for d in plan.drop))
        return "\n".join(parts)
