"""The base compiler: study model -> sqlglot expressions -> SQL text for one dialect.

Shared logic lives in the cohort and analysis mixins; a dialect subclass overrides only the
small named methods below (date arithmetic, year/month, floor division, the double type) and
names the sqlglot dialect it writes. The base versions use sqlglot's dialect-neutral
expressions (``DateAdd``, ``DateDiff``, ``Year``...), which sqlglot transpiles to any dialect
it writes (tsql, bigquery, snowflake, ...).

`statements` returns one statement per analysis, in the study's order; each is self-contained
(``WITH`` the cohort CTEs, then the analysis). `script` joins them, separated by ``;``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from sqlglot import exp

from passerelle.query import model as m
from passerelle.query.compiler import sql as q
from passerelle.query.compiler.analyses import AnalysisCompiler
from passerelle.query.compiler.ctes import Ctes

TableNamer = Callable[[str], str]


class BaseCompiler(AnalysisCompiler):
    """Compiles a Study for one sqlglot dialect. `qualify` maps a CDM table name to the name
    the engine's SQL uses (a store's `qualified`); by default the bare table name."""

    dialect: ClassVar[str] = ""

    def __init__(self, qualify: TableNamer | None = None, dialect: str | None = None) -> None:
        self.qualify = qualify
        self.write_dialect = dialect if dialect is not None else self.dialect

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

    # -- statements --------------------------------------------------------------------------
    def statement(self, study: m.Study, analysis: m.Analysis) -> exp.Query:
        ctes = Ctes()
        flags = self.cohort(ctes, study, flagged=isinstance(analysis, m.Attrition))
        final = self.analysis(analysis, ctes, study, flags)
        return ctes.attach(final)

    def statements(self, study: m.Study, pretty: bool = False) -> list[tuple[m.Analysis, str]]:
        """One SQL statement per analysis, in the study's order."""
        return [
            (a, self.statement(study, a).sql(dialect=self.write_dialect or None, pretty=pretty))
            for a in study.analyses
        ]

    def script(self, study: m.Study) -> str:
        parts = []
        for i, (a, sql) in enumerate(self.statements(study, pretty=True), start=1):
            parts.append(f"-- analysis {i}: {m.analysis_kind(a)}\n{sql};\n")
        return "\n".join(parts)
