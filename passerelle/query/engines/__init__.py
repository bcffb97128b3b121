"""Query engines: one per store engine, all agreeing with the reference engine.

engine_for(store).execute(study) -> StudyResult
"""

from __future__ import annotations

from passerelle.cdm.stores.base import Store
from passerelle.errors import Unsupported
from passerelle.query.engines.base import ALL_CAPABILITIES, Capability, SQLEngine


def engine_class(name: str) -> type[SQLEngine]:
    # Imported lazily, like the stores: a DuckDB user never imports the Spark engine.
    if name == "duckdb":
        from passerelle.query.engines.duckdb import DuckDBEngine

        return DuckDBEngine
    if name == "postgres":
        from passerelle.query.engines.postgres import PostgresEngine

        return PostgresEngine
    if name == "spark":
        from passerelle.query.engines.spark import SparkEngine

        return SparkEngine
    raise Unsupported(f"no query engine for store engine {name!r}")


def engine_for(store: Store) -> SQLEngine:
    return engine_class(store.engine)(store)


__all__ = ["ALL_CAPABILITIES", "Capability", "SQLEngine", "engine_class", "engine_for"]
