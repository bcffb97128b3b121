"""Datasets: publishing, search with filters, profiles through disclosure, HealthDCAT-AP."""

from __future__ import annotations

from datetime import date

import pytest

from passerelle.access.enums import Domain, OrgType, Role
from passerelle.access.errors import Forbidden, NotFound
from passerelle.catalog.schemas import DatasetIn
from passerelle.catalog.service import Catalog


def ds(**over):
    fields = dict(
        title="Séjours hospitaliers",
        description="Tous les séjours du CHU depuis 2010",
        domains=["condition_occurrence", "drug_exposure"],
        period_start=date(2010, 1, 1),
        period_end=date(2020, 12, 31),
        population="Patients hospitalisés",
        update_frequency="monthly",
        legal_basis="RGPD art. 6.1.e et 9.2.j",
        access_conditions="Avis du CSE",
        keywords=["hémorragie", "AINS"],
        contact_email="dpo@chu.example",
        health_categories=["EHR"],
        health_themes=["http://www.wikidata.org/entity/Q1134430"],
        min_age=0,
        max_age=100,
    )
    fields.update(over)
    return DatasetIn(**fields)


@pytest.fixture
def catalog(ctx, seeded):
    c = Catalog(ctx)
    c.create(seeded.p("hopa", Role.STEWARD), ds())
    c.create(
        seeded.p("hopb", Role.STEWARD),
        ds(
            title="Cancer registry",
            description="Oncology",
            domains=["measurement"],
            period_start=date(2021, 1, 1),
            period_end=None,
            keywords=["cancer"],
        ),
    )
    c.create(
        seeded.p("bio", Role.STEWARD),
        ds(title="Trial data", description="Phase II", domains=["observation"], keywords=[]),
    )
    c.create(seeded.p("hopa", Role.STEWARD), ds(title="Hidden draft", published=False))
    return c


def titles(page):
    return sorted(d.title for d in page.items)


def test_search_words_accents_and_filters(catalog):
    assert titles(catalog.search("hemorragie")) == ["Séjours hospitaliers"]
    assert titles(catalog.search("SEJOURS chu")) == ["Séjours hospitaliers"]
    assert catalog.search("").total == 3  # unpublished datasets are not listed
    assert titles(catalog.search(domain=Domain.MEASUREMENT)) == ["Cancer registry"]
    assert titles(catalog.search(producer_type=OrgType.BIOTECH)) == ["Trial data"]
    hospital = catalog.search(producer_type=OrgType.HOSPITAL)
    assert titles(hospital) == ["Cancer registry", "Séjours hospitaliers"]
    later = catalog.search(period_from=date(2022, 1, 1))
    assert "Séjours hospitaliers" not in titles(later) and "Cancer registry" in titles(later)
    assert catalog.search("100%_").total == 0  # LIKE wildcards are escaped
    page = catalog.search(limit=1, offset=1)
    assert page.total == 3 and len(page.items) == 1


def test_only_stewards_of_the_producer_edit(catalog, seeded):
    first = catalog.search("sejours").items[0]
    with pytest.raises(Forbidden):
        catalog.update(seeded.p("hopb", Role.STEWARD), first.id, ds(title="x"))
    with pytest.raises(Forbidden):
        catalog.update(seeded.p("hopa", Role.APPLICANT), first.id, ds(title="x"))
    out = catalog.update(seeded.p("hopa", Role.STEWARD), first.id, ds(title="Stays"))
    assert out.title == "Stays" and titles(catalog.search("stays")) == ["Stays"]


def test_unpublished_is_hidden_from_others(catalog, seeded, ctx):
    from sqlalchemy import select

    from passerelle.access.models import Dataset

    with ctx.db.read() as s:
        hidden = s.scalar(select(Dataset.id).where(Dataset.title == "Hidden draft"))
    with pytest.raises(NotFound):
        catalog.get(seeded.p("bio", Role.APPLICANT), hidden)
    assert catalog.get(seeded.p("hopa", Role.STEWARD), hidden).published is False


def test_full_text_prefix_match_and_relevance(ctx, seeded):
    c = Catalog(ctx)
    steward = seeded.p("hopa", Role.STEWARD)
    c.create(steward, ds(title="Stays", description="One sepsis case among stays", keywords=[]))
    c.create(
        steward,
        ds(
            title="Sepsis registry",
            description="Sepsis, septic shock, sepsis bundles",
            keywords=["sepsis"],
        ),
    )
    page = c.search("seps")  # a prefix finds whole words
    assert [d.title for d in page.items] == ["Sepsis registry", "Stays"]
    assert c.search("sepsis registry").total == 1
