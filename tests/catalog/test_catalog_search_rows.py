"""The search page is read as plain rows (no ORM objects): it must show exactly what the ORM
objects show, for every filter, on SQLite and PostgreSQL; and the JSON the API sends from those
rows (orjson, no validation on the way out) must be the JSON of the validated page."""

from __future__ import annotations

from datetime import date

import orjson
import pytest

from passerelle.access.enums import Domain, OrgType, Role
from passerelle.catalog.schemas import DatasetIn
from passerelle.catalog.search import search_statement
from passerelle.catalog.service import Catalog, dataset_out
from passerelle.web.errors import json_response

WORDS = ["cardiologie", "oncologie", "diabète", "urgences", "pédiatrie", "sepsis"]


@pytest.fixture
def catalog(ctx, seeded):
    c = Catalog(ctx)
    for i in range(14):
        org = ("hopa", "hopb", "bio")[i % 3]
        created = c.create(
            seeded.p(org, Role.STEWARD),
            DatasetIn(
                title=f"Entrepôt {WORDS[i % len(WORDS)]} {i}",
                description=f"Séjours et {WORDS[(i + 2) % len(WORDS)]} depuis 2015",
                domains=["condition_occurrence", "drug_exposure", "measurement"][: 1 + i % 3],
                period_start=date(2010 + i, 1, 1) if i % 4 else None,
                period_end=date(2018 + i, 12, 31) if i % 5 else None,
                keywords=[WORDS[i % len(WORDS)], "100%_"] if i == 3 else [WORDS[i % 6]],
                contact_email="dpo@chu.example",
                min_age=i if i % 2 else None,
                published=i != 7,
            ),
        )
        if i in (1, 4):  # a released profile: nested values, floats, a time
            profile = {"policy": "default", "persons": 120 + i, "share": 0.25, "years": [2015]}
            c.set_profile(None, created.id, profile)
    return c


QUERIES = [
    {},
    {"q": "oncologie"},
    {"q": "sejours diabete"},
    {"q": "ENTREPOT"},
    {"q": "seps"},
    {"q": "100%_"},
    {"q": "nothing-like-this"},
    {"domain": Domain.MEASUREMENT},
    {"producer_type": OrgType.HOSPITAL},
    {"producer_type": OrgType.BIOTECH, "q": "entrepot"},
    {"period_from": date(2025, 1, 1)},
    {"period_to": date(2012, 6, 1)},
    {"period_from": date(2016, 1, 1), "period_to": date(2020, 1, 1), "q": "sejours"},
    {"domain": Domain.DRUG, "producer_type": OrgType.HOSPITAL},
]
PAGES = [(0, 20), (0, 3), (2, 5), (12, 20), (40, 10)]


def _reference(ctx, query, offset, limit):
    stmt = search_statement(
        query.get("q", ""),
        query.get("producer_type"),
        query.get("domain"),
        query.get("period_from"),
        query.get("period_to"),
        dialect=ctx.db.dialect,
    )
    with ctx.db.read() as s:
        everything = [dataset_out(d) for d in s.scalars(stmt).unique()]
    return len(everything), everything[offset : offset + limit]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: ",".join(map(str, q.values())) or "all")
def test_rows_show_what_the_objects_show(ctx, catalog, query):
    for offset, limit in PAGES:
        page = catalog.search(**query, offset=offset, limit=limit)
        total, items = _reference(ctx, query, offset, limit)
        assert (page.total, page.offset, page.limit) == (total, offset, limit)
        assert page.items == items
        assert page.model_dump_json()  # serializable as the API sends it


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: ",".join(map(str, q.values())) or "all")
def test_the_api_sends_the_json_of_the_validated_page(catalog, query):
    for offset, limit in PAGES:
        sent = json_response(catalog.search_rows(**query, offset=offset, limit=limit)).body
        validated = catalog.search(**query, offset=offset, limit=limit).model_dump_json()
        assert orjson.loads(sent) == orjson.loads(validated)
