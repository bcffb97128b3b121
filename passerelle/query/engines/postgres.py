"""The PostgreSQL engine.

PostgreSQL estimates the row counts of CTEs poorly (a ``ROW_NUMBER() ... = 1`` filter, a
flag), then joins them back per entry with nested loops, which grows with the square of the
cohort (GiBleed's second spec: 10 s instead of 0.15 s). Cohort statements are hash-join
shaped, so the engine turns nested loops off for its own statements and restores the
setting afterwards. The materialised cohort is a ``TEMP`` table of the store's connection,
ANALYZEd once created (`PostgresStore.analyze`: autovacuum never analyses temporary tables).
"""

from __future__ import annotations

from passerelle.query import model as m
from passerelle.query.compiler.dialects import PostgresCompiler
from passerelle.query.engines.base import SQLEngine

SESSION_SETTINGS = (("enable_nestloop", "off"),)


class PostgresEngine(SQLEngine):
    name = "postgres"
    compiler_class = PostgresCompiler

    def prepare(self, study: m.Study) -> None:
        for name, value in SESSION_SETTINGS:
            self.store.query(f"SET {name} = {value}")

    def cleanup(self) -> None:
        for name, _ in SESSION_SETTINGS:
            self.store.query(f"RESET {name}")
