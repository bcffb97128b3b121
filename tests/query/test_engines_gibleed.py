"""Acceptance on Eunomia GiBleed, on every engine: the issue's numbers, and the second spec
identical everywhere and equal to the reference engine.

GiBleed is loaded once per engine per session: into DuckDB by the project's loader, then
exported to PostgreSQL (COPY) and to Spark's Parquet warehouse (DuckDB's COPY).
"""

from __future__ import annotations

import pytest
from engine_fixtures import drop_postgres_schema, postgres_schema_url, root_conftest
from enginedata import export_duckdb_to_postgres, export_duckdb_to_spark, gibleed_duckdb
from issue_specs import CELECOXIB, GI_BLEED

from passerelle.cdm.stores import open_store
from passerelle.query.engines import engine_for
from passerelle.query.parse import parse_study
from passerelle.query.reference import ReferenceEngine

pytestmark = pytest.mark.shared_data

ENGINES = [
    pytest.param("duckdb"),
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("spark", marks=[pytest.mark.spark, pytest.mark.slow]),
]


@pytest.fixture(scope="session")
def gibleed_duckdb_file(gibleed_dir, tmp_path_factory):
    return gibleed_duckdb(gibleed_dir, tmp_path_factory.mktemp("gibleed") / "cdm.duckdb")


@pytest.fixture(scope="session", params=ENGINES)
def gibleed(request, gibleed_duckdb_file, tmp_path_factory):
    """A store holding GiBleed, per engine."""
    name = request.param
    if name == "duckdb":
        store = open_store(f"duckdb://{gibleed_duckdb_file}")
        yield store
        store.close()
    elif name == "postgres":
        url, schema = postgres_schema_url()
        store = open_store(url)
        export_duckdb_to_postgres(gibleed_duckdb_file, store)
        yield store
        store.close()
        drop_postgres_schema(schema)
    else:
        root_conftest().spark_available()
        warehouse = tmp_path_factory.mktemp("gibleed-spark")
        store = open_store(export_duckdb_to_spark(gibleed_duckdb_file, warehouse))
        yield store
        store.close()


@pytest.fixture(scope="session")
def celecoxib_reference(gibleed_duckdb_file):
    study = parse_study(CELECOXIB)
    store = open_store(f"duckdb://{gibleed_duckdb_file}")
    try:
        return ReferenceEngine.from_store(store, study).execute(study)
    finally:
        store.close()


def drug_era_spec(concept: int) -> dict:
    return {
        "study": f"drug-era-{concept}",
        "cohort": {
            "entry": {"drug_era": {"concepts": [concept], "descendants": True}, "occurrence": "all"}
        },
        "analyses": [{"name": "entries", "count": "entries"}],
    }


def test_gi_bleed_spec(gibleed):
    result = engine_for(gibleed).execute(parse_study(GI_BLEED))
    assert result.engine == gibleed.engine
    assert result.table("entries").rows == [(479,)]
    assert sorted(result.table("persons").rows) == [(8507, 237), (8532, 242)]


@pytest.mark.parametrize(("concept", "entries"), [(1118084, 1844), (1124300, 850)])
def test_drug_era_published_cohorts(gibleed, concept, entries):
    result = engine_for(gibleed).execute(parse_study(drug_era_spec(concept)))
    assert result.table("entries").rows == [(entries,)]


def test_celecoxib_spec_equals_the_reference(gibleed, celecoxib_reference):
    result = engine_for(gibleed).execute(parse_study(CELECOXIB))
    for table, ref in zip(result.tables, celecoxib_reference.tables, strict=True):
        assert table.columns == ref.columns
        assert table.sorted_rows() == ref.sorted_rows(), table.name
    # The numbers every engine gives (identical: compared exactly, floats included).
    assert result.table("size").rows == [(1800,)]
    assert sorted(result.table("gi_bleed_1y").rows) == [
        (8507, 894, 180, 180 / 894),
        (8532, 906, 175, 175 / 906),
    ]
