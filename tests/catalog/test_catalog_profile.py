"""A dataset profile from a real CDM store (GiBleed on DuckDB), released only after disclosure."""

from __future__ import annotations

import pytest

from passerelle.access.enums import Role
from passerelle.catalog.profile import raw_profile, released_profile
from passerelle.catalog.service import Catalog
from passerelle.cdm.load import load_folder
from passerelle.cdm.stores import open_store
from passerelle.privacy.policy import DEFAULT_MIN_CELL
from tests.conftest import shared


@pytest.fixture(scope="module")
def gibleed_store(tmp_path_factory):
    folder = shared("eunomia-gibleed", "csv")
    url = f"duckdb:///{tmp_path_factory.mktemp('cdm') / 'cdm.duckdb'}"
    store = open_store(url)
    try:
        store.init()
        load_folder(store, folder)
    finally:
        store.close()
    return url


def test_profile_counts_pass_disclosure(gibleed_store):
    raw, _facts = raw_profile(gibleed_store)
    assert raw.tables[0].rows[0][0] == 2694  # GiBleed persons
    profile = released_profile(gibleed_store)
    assert profile["policy"]
    assert profile["persons"] % 5 == 0 and abs(profile["persons"] - 2694) <= 5
    domains = {d["domain"]: d for d in profile["records_per_domain"]}
    assert "condition_occurrence" in domains and "drug_exposure" in domains
    assert profile["first_year"] <= profile["last_year"]
    for c in profile["top_concepts"]:
        assert c["persons"] >= DEFAULT_MIN_CELL  # nothing below the threshold is released
    names = [c["concept_name"] for c in profile["top_concepts"]]
    assert any(names)


def test_profile_is_stored_on_the_dataset(ctx, seeded, gibleed_store, app_db_url):
    if not app_db_url.startswith("sqlite"):
        pytest.skip("the profile does not depend on the app database")
    from test_catalog_service import ds

    c = Catalog(ctx)
    d = c.create(seeded.p("hopa", Role.STEWARD), ds())
    out = c.profile_from_store(seeded.p("hopa", Role.STEWARD), d.id, gibleed_store)
    assert out.profile and out.profile["persons"] and out.profiled_at
