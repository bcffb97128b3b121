"""Catalogue search: words of the text fields, lower-cased and accent-free.

Each query word must begin a word of the dataset's `search_text`, through the database's own
full-text index (SQLite: the FTS5 table of migration 0003; PostgreSQL: the stored tsvector
column `search_vector` and its GIN index, migration 0005), results
ranked by relevance; a database without one falls back to a portable LIKE match. Domains are
indexed as `domain:<table>` tokens and filtered with LIKE. Query words are [a-z0-9]+ only and
always bound as parameters.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Select,
    String,
    and_,
    bindparam,
    column,
    func,
    literal_column,
    or_,
    select,
    table,
)

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

# The search words travel as one bound parameter (the FTS query), or one per word (LIKE).
MATCH = bindparam("match", type_=String)


def _sqlite_fts(stmt: Select[Any], n_words: int) -> Select[Any]:
    hits = (
        select(FTS5.c.rowid, FTS5.c.rank)
        .where(literal_column("dataset_search").op("MATCH")(MATCH))
        .subquery()
    )
    return stmt.join(hits, hits.c.rowid == Dataset.id).order_by(hits.c.rank)


def _sqlite_match(terms: list[str]) -> str:
    return " AND ".join(f'"{t}"*' for t in terms)  # terms are [a-z0-9]+: no FTS syntax


# PostgreSQL's stored to_tsvector('simple', search_text) (migration 0005). Not a model column:
# SQLite has none.
SEARCH_VECTOR: ColumnElement[Any] = literal_column(f"{Dataset.__tablename__}.search_vector")


def _postgres_fts(stmt: Select[Any], n_words: int) -> Select[Any]:
    query = func.to_tsquery(literal_column("'simple'"), MATCH)
    return stmt.where(SEARCH_VECTOR.op("@@")(query)).order_by(
        func.ts_rank(SEARCH_VECTOR, query).desc()
    )


def _postgres_match(terms: list[str]) -> str:
    return " & ".join(f"{t}:*" for t in terms)


def _like(stmt: Select[Any], n_words: int) -> Select[Any]:
    for i in range(n_words):
        stmt = stmt.where(Dataset.search_text.like(bindparam(f"word{i}"), escape="\\"))
    return stmt


def _like_params(terms: list[str]) -> dict[str, str]:
    return {f"word{i}": f"%{escape_like(w)}%" for i, w in enumerate(terms)}


@dataclass(frozen=True)
class FullText:
    """How one dialect searches words: the statement's shape and its bound values."""

    apply: Callable[[Select[Any], int], Select[Any]]  # the statement, for n words
    params: Callable[[list[str]], dict[str, str]]
    per_word: bool = False  # the statement's shape depends on the number of words


# Full-text strategy per dialect (the index each one has, from migration 0003).
FULL_TEXT: dict[str, FullText] = {
    "sqlite": FullText(_sqlite_fts, lambda terms: {"match": _sqlite_match(terms)}),
    "postgresql": FullText(_postgres_fts, lambda terms: {"match": _postgres_match(terms)}),
}
LIKE = FullText(_like, _like_params, per_word=True)

# What a search result shows of a dataset and its producer (Core columns: no ORM objects).
RESULT_COLUMNS = (
    Dataset.id,
    Dataset.organisation_id,
    Organisation.name.label("producer_name"),
    Organisation.type.label("producer_type"),
    Dataset.title,
    Dataset.description,
    Dataset.domains,
    Dataset.period_start,
    Dataset.period_end,
    Dataset.population,
    Dataset.update_frequency,
    Dataset.legal_basis,
    Dataset.access_conditions,
    Dataset.keywords,
    Dataset.contact_name,
    Dataset.contact_email,
    Dataset.health_categories,
    Dataset.health_themes,
    Dataset.min_age,
    Dataset.max_age,
    Dataset.published,
    Dataset.profile,
    Dataset.profiled_at,
    Dataset.updated_at,
)


@dataclass(frozen=True)
class Statements:
    """One shape of query (which filters are set), built once and reused with new values."""

    datasets: Select[Any]  # Dataset objects (ORM)
    page: Select[Any]  # RESULT_COLUMNS; binds offset and limit
    count: Select[Any]  # the number of matches


@dataclass(frozen=True)
class Search:
    """A catalogue query: its statements and the values to bind."""

    statements: Statements
    params: dict[str, Any]


def _filtered(
    stmt: Select[Any],
    dialect: str,
    words: int,
    domain: bool,
    producer_type: bool,
    producer_id: bool,
    period_from: bool,
    period_to: bool,
) -> Select[Any]:
    stmt = stmt.select_from(Dataset)
    stmt = stmt.join(Organisation, Dataset.organisation_id == Organisation.id)
    stmt = stmt.where(Dataset.published)
    if words:
        stmt = FULL_TEXT.get(dialect, LIKE).apply(stmt, words)
    if domain:
        stmt = stmt.where(Dataset.search_text.like(bindparam("domain", type_=String)))
    if producer_type:
        stmt = stmt.where(Organisation.type == bindparam("producer_type"))
    if producer_id:
        stmt = stmt.where(Dataset.organisation_id == bindparam("producer_id"))
    # Periods overlap; a dataset with an open end overlaps everything after its start.
    if period_from:
        since = bindparam("period_from", type_=Date)
        stmt = stmt.where(or_(Dataset.period_end.is_(None), Dataset.period_end >= since))
    if period_to:
        until = bindparam("period_to", type_=Date)
        stmt = stmt.where(and_(or_(Dataset.period_start.is_(None), Dataset.period_start <= until)))
    return stmt.order_by(Dataset.updated_at.desc(), Dataset.id.desc())


@functools.lru_cache(maxsize=256)
def _statements(*shape: Any) -> Statements:
    datasets = _filtered(select(Dataset), *shape)
    page = _filtered(select(*RESULT_COLUMNS), *shape)
    count = select(func.count()).select_from(datasets.order_by(None).subquery())
    return Statements(datasets, page.offset(bindparam("offset")).limit(bindparam("limit")), count)


def search(
    q: str = "",
    producer_type: OrgType | None = None,
    domain: Domain | None = None,
    period_from: date | None = None,
    period_to: date | None = None,
    producer_id: int | None = None,
    dialect: str = "",
) -> Search:
    """The published datasets matching every filter, most relevant first, then newest."""
    terms = words(q)[:MAX_WORDS]
    strategy = FULL_TEXT.get(dialect, LIKE)
    shape_words = (len(terms) if strategy.per_word else 1) if terms else 0
    statements = _statements(
        dialect,
        shape_words,
        domain is not None,
        producer_type is not None,
        producer_id is not None,
        period_from is not None,
        period_to is not None,
    )
    params: dict[str, Any] = strategy.params(terms) if terms else {}
    if domain is not None:
        params["domain"] = f"% domain:{domain.value} %"
    if producer_type is not None:
        params["producer_type"] = producer_type
    if producer_id is not None:
        params["producer_id"] = producer_id
    if period_from is not None:
        params["period_from"] = period_from
    if period_to is not None:
        params["period_to"] = period_to
    return Search(statements, params)


def search_statement(
    q: str = "",
    producer_type: OrgType | None = None,
    domain: Domain | None = None,
    period_from: date | None = None,
    period_to: date | None = None,
    producer_id: int | None = None,
    dialect: str = "",
) -> Select[Any]:
    """The same search as ORM `Dataset` objects, its values bound into the statement."""
    found = search(q, producer_type, domain, period_from, period_to, producer_id, dialect)
    return found.statements.datasets.params(found.params)
