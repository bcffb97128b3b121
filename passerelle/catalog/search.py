"""Catalogue search: words of the text fields, lower-cased and accent-free.

Each query word must begin a word of the dataset's `search_text`, through the database's own
full-text index (migration 0003: SQLite FTS5, PostgreSQL tsvector with a GIN index), results
ranked by relevance; a database without one falls back to a portable LIKE match. Domains are
indexed as `domain:<table>` tokens and filtered with LIKE. Query words are [a-z0-9]+ only and
always bound as parameters.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from datetime import date
from typing import Any

from sqlalchemy import Select, and_, column, func, literal_column, or_, select, table

from passerelle.access.enums import Domain, OrgType
from passerelle.access.models import Dataset, Organisation

WORD = re.compile(r"[a-z0-9]+")
MAX_WORDS = 8


def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    return WORD.findall(fold(text))


def index_text(fields: Iterable[str], domains: Iterable[str]) -> str:
    tokens = [w for f in fields for w in words(f)]
    tokens += [f"domain:{d}" for d in domains]
    return " " + " ".join(tokens) + " "


def escape_like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


FTS5 = table("dataset_search", column("rowid"), column("rank"))


def _sqlite_fts(stmt: Select[Any], terms: list[str]) -> Select[Any]:
    match = " AND ".join(f'"{t}"*' for t in terms)  # terms are [a-z0-9]+: no FTS syntax
    hits = (
        select(FTS5.c.rowid, FTS5.c.rank)
        .where(literal_column("dataset_search").op("MATCH")(match))
        .subquery()
    )
    return stmt.join(hits, hits.c.rowid == Dataset.id).order_by(hits.c.rank)


def _postgres_fts(stmt: Select[Any], terms: list[str]) -> Select[Any]:
    vector = func.to_tsvector(literal_column("'simple'"), Dataset.search_text)
    query = func.to_tsquery(literal_column("'simple'"), " & ".join(f"{t}:*" for t in terms))
    return stmt.where(vector.op("@@")(query)).order_by(func.ts_rank(vector, query).desc())


def _like(stmt: Select[Any], terms: list[str]) -> Select[Any]:
    for w in terms:
        stmt = stmt.where(Dataset.search_text.like(f"%{escape_like(w)}%", escape="\\"))
    return stmt


# Full-text strategy per dialect (the index each one has, from migration 0003).
FULL_TEXT: dict[str, Callable[[Select[Any], list[str]], Select[Any]]] = {
    "sqlite": _sqlite_fts,
    "postgresql": _postgres_fts,
}


def search_statement(
    q: str = "",
    producer_type: OrgType | None = None,
    domain: Domain | None = None,
    period_from: date | None = None,
    period_to: date | None = None,
    producer_id: int | None = None,
    dialect: str = "",
) -> Select[Any]:
    stmt = select(Dataset).join(Organisation, Dataset.organisation_id == Organisation.id)
    stmt = stmt.where(Dataset.published)
    terms = words(q)[:MAX_WORDS]
    if terms:
        stmt = FULL_TEXT.get(dialect, _like)(stmt, terms)
    if domain is not None:
        stmt = stmt.where(Dataset.search_text.like(f"% domain:{domain.value} %"))
    if producer_type is not None:
        stmt = stmt.where(Organisation.type == producer_type)
    if producer_id is not None:
        stmt = stmt.where(Dataset.organisation_id == producer_id)
    # Periods overlap; a dataset with an open end overlaps everything after its start.
    if period_from is not None:
        stmt = stmt.where(or_(Dataset.period_end.is_(None), Dataset.period_end >= period_from))
    if period_to is not None:
        stmt = stmt.where(
            and_(or_(Dataset.period_start.is_(None), Dataset.period_start <= period_to))
        )
    return stmt.order_by(Dataset.updated_at.desc(), Dataset.id.desc())
