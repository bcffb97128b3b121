"""One small class per engine: only what differs from sqlglot's dialect-neutral expressions.

DuckDB and PostgreSQL add integers to dates and subtract dates to get days (keeping DATE
types, where ``+ INTERVAL`` would widen to TIMESTAMP); PostgreSQL's EXTRACT returns NUMERIC,
so year/month are cast to INTEGER; Spark has ``DATE_ADD``/``DATEDIFF`` on dates.
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
