"""One small class per engine: only what differs from sqlglot's dialect-neutral expressions.

DuckDB and PostgreSQL add integers to dates and subtract dates to get days (keeping DATE
types, where ``+ INTERVAL`` would widen to TIMESTAMP); PostgreSQL's EXTRACT returns NUMERIC,
so year/month are cast to INTEGER; Spark has ``DATE_ADD``/``DATEDIFF`` on dates, and its
cohort table is a cached temporary view (``CACHE TABLE ... AS``: computed once, eagerly, kept in
the executors' memory), dropped with ``DROP VIEW``, which also uncaches it. Spark inlines every
CTE, so a cohort step read twice (``entered``, ``candidates``) is cached as a table of its own
rather than computed twice (`materialise_shared`).
"""

from __future__ import annotations

from sqlglot import exp

from passerelle.query.compiler import sql as q
from passerelle.query.compiler.base import BaseCompiler


class DuckDBCompiler(BaseCompiler):
    dialect = "duckdb"

    def date_add(self, d: exp.Expression, days: int) -> exp.Expression:
        if days == 0:
            return d
        return (
            exp.Add(this=d, expression=q.num(days))
            if days > 0
            else exp.Sub(this=d, expression=q.num(-days))
        )

    def day_diff(self, later: exp.Expression, earlier: exp.Expression) -> exp.Expression:
        return exp.Paren(this=exp.Sub(this=later, expression=earlier))


class PostgresCompiler(DuckDBCompiler):
    dialect = "postgres"

    def year(self, d: exp.Expression) -> exp.Expression:
        return exp.cast(exp.Extract(this=exp.var("YEAR"), expression=d), q.INT)

    def month(self, d: exp.Expression) -> exp.Expression:
        return exp.cast(exp.Extract(this=exp.var("MONTH"), expression=d), q.INT)


class SparkCompiler(BaseCompiler):
    dialect = "spark"

    materialise_shared = True

    def create_table(self, name: str, query: exp.Query) -> exp.Expression:
        return exp.Cache(this=exp.to_table(name), lazy=False, expression=query)

    def drop_table(self, name: str) -> exp.Expression:
        return exp.Drop(tables=[exp.to_table(name)], kind="VIEW", exists=True)

    def date_add(self, d: exp.Expression, days: int) -> exp.Expression:
        if days == 0:
            return d
        return exp.Anonymous(this="DATE_ADD", expressions=[d, q.num(days)])

    def day_diff(self, later: exp.Expression, earlier: exp.Expression) -> exp.Expression:
        return exp.Anonymous(this="DATEDIFF", expressions=[later, earlier])


# sqlglot dialect name -> compiler class; any other dialect sqlglot writes uses BaseCompiler.
COMPILERS: dict[str, type[BaseCompiler]] = {
    "duckdb": DuckDBCompiler,
    "postgres": PostgresCompiler,
    "spark": SparkCompiler,
    "databricks": SparkCompiler,
}
