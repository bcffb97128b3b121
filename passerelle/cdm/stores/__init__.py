"""Opening a CDM store from its URL."""

from __future__ import annotations

from passerelle.cdm.stores.base import QueryResult, RowError, Store, TableLoad
from passerelle.cdm.url import StoreURL, parse_store_url
from passerelle.config import Settings


def store_class(scheme: str) -> type[Store]:
    # Imported lazily: a DuckDB user never pays for importing PySpark.
    if scheme == "duckdb":
        from passerelle.cdm.stores.duckdb_store import DuckDBStore

        return DuckDBStore
    if scheme == "postgresql":
        from passerelle.cdm.stores.postgres_store import PostgresStore

        return PostgresStore
    from passerelle.cdm.stores.spark_store import SparkStore

    return SparkStore


def open_store(url: str | StoreURL, settings: Settings | None = None) -> Store:
    """A connected store for `url`; raises StoreUnavailable with one clear line if it cannot."""
    parsed = url if isinstance(url, StoreURL) else parse_store_url(url)
    store = store_class(parsed.scheme)(parsed, settings)
    store.connect()
    return store


__all__ = ["QueryResult", "RowError", "Store", "TableLoad", "open_store", "store_class"]
