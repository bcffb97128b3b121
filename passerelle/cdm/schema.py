"""Look-ups over the declared CDM tables (see tables.py, the one declaration)."""

from __future__ import annotations

from passerelle.cdm.model import Column, Index, Table
from passerelle.cdm.tables import TABLES

TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}
CDM_VERSION = "5.4"

__all__ = ["CDM_VERSION", "TABLES", "TABLES_BY_NAME", "Column", "Index", "Table"]
