"""Portable catalogue search: words of the text fields, lower-cased and accent-free.

Each query word must appear in a dataset's `search_text` (LIKE, bound parameters, the same
SQL on SQLite and PostgreSQL). Domains are indexed as `domain:<table>` tokens.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import date
from typing import Any

from sqlalchemy import Select, and_, or_, select

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


def search_statement(
    q: str = "",
    producer_type: OrgType | None = None,
    domain: Domain | None = None,
    period_from: date | None = None,
    period_to: date | None = None,
    producer_id: int | None = None,
) -> Select[Any]:
    stmt = select(Dataset).join(Organisation, Dataset.organisation_id == Organisation.id)
    stmt = stmt.where(Dataset.published)
    for w in words(q)[:MAX_WORDS]:
        stmt = stmt.where(Dataset.search_text.like(f"%{escape_like(w)}%", escape="\\"))
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
