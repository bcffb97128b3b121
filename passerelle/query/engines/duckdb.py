"""The DuckDB engine (the embedded default store)."""

from __future__ import annotations

from passerelle.query.compiler.dialects import DuckDBCompiler
from passerelle.query.engines.base import SQLEngine


class DuckDBEngine(SQLEngine):
    name = "duckdb"
    compiler_class = DuckDBCompiler
