"""`passerelle demo --cdm-only`: generate the synthetic CDM, load it into a real store, count."""

from __future__ import annotations

import shutil

import pytest

from passerelle.cdm.load import load_folder
from passerelle.cdm.schema import TABLES_BY_NAME
from passerelle.cdm.stores import open_store
from passerelle.cli import main
from passerelle.config import get_settings
from passerelle.demo import vocabulary as v
from passerelle.demo.synthetic import SyntheticConfig, generate, generate_cdm


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    folder = tmp_path / "passerelle-data"
    monkeypatch.setenv("PASSERELLE_DATA_DIR", str(folder))
    monkeypatch.delenv("PASSERELLE_STORE", raising=False)
    get_settings.cache_clear()
    yield folder
    get_settings.cache_clear()


def _gi_bleed_persons(store) -> int:
    sql = (
        f"SELECT count(DISTINCT c.person_id) FROM {store.qualified('condition_occurrence')} c "
        f"JOIN {store.qualified('concept_ancestor')} a "
        "ON a.descendant_concept_id = c.condition_concept_id "
        f"WHERE a.ancestor_concept_id = {v.GI_BLEED}"
    )
    return int(store.query(sql).rows[0][0])


def _expected_gi_bleed_persons(cdm) -> int:
    return len(
        {
            r["person_id"]
            for r in cdm.tables["condition_occurrence"]
            if r["condition_concept_id"] in (v.GI_BLEED, v.ACUTE_GI_BLEED)
        }
    )


def test_demo_command_loads_the_default_store_and_can_run_twice(data_dir, capsys):
    expected = generate_cdm(SyntheticConfig(n_persons=300, seed=42))
    for _ in range(2):
        main(["demo", "--cdm-only", "--persons", "300"])
        out = capsys.readouterr().out
        assert "person" in out and "300" in out
    assert (data_dir / "demo-csv" / "person.csv").is_file()
    with open_store(f"duckdb:///{data_dir / 'cdm.duckdb'}") as store:
        counts = store.counts()
        assert counts == expected.counts()
        assert _gi_bleed_persons(store) == _expected_gi_bleed_persons(expected)


def test_demo_cdm_only_seed_option(data_dir, capsys):
    main(["demo", "--cdm-only", "--persons", "50", "--seed", "3"])
    capsys.readouterr()
    expected = generate_cdm(SyntheticConfig(n_persons=50, seed=3)).counts()
    with open_store(f"duckdb:///{data_dir / 'cdm.duckdb'}") as store:
        assert store.counts() == expected


def test_demo_refuses_a_bad_person_count(data_dir, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--cdm-only", "--persons", "0"])
    assert exc.value.code == 2
    assert "persons" in capsys.readouterr().err


@pytest.mark.postgres
def test_demo_loads_into_postgresql(data_dir, postgres_store_url, capsys):
    main(["demo", "--persons", "200", "--store", postgres_store_url])
    capsys.readouterr()
    expected = generate_cdm(SyntheticConfig(n_persons=200, seed=42))
    with open_store(postgres_store_url) as store:
        assert store.counts() == expected.counts()
        assert _gi_bleed_persons(store) == _expected_gi_bleed_persons(expected)


@pytest.mark.postgres
def test_generated_folder_loads_with_load_folder_on_postgresql(tmp_path, postgres_store_url):
    counts = generate(tmp_path / "csv", SyntheticConfig(n_persons=150, seed=5, site="pg"))
    with open_store(postgres_store_url) as store:
        result = load_folder(store, tmp_path / "csv", replace=True)
        assert result.ok and not result.skipped
        assert {t.table: t.rows for t in result.loaded} == counts
        assert not [t.table for t in result.loaded if t.duplicate_keys]
        assert store.counts() == counts


SPARK_TABLES = ("person", "observation_period", "condition_occurrence", "concept_ancestor")


@pytest.mark.spark
@pytest.mark.slow
def test_generated_files_load_on_spark(tmp_path, spark_store_url):
    """Spark's start-up and per-table cost are high: a few tables suffice to check the format."""
    config = SyntheticConfig(n_persons=100, seed=9, site="spark")
    counts = generate(tmp_path / "csv", config)
    subset = tmp_path / "subset"
    subset.mkdir()
    for name in SPARK_TABLES:
        shutil.copy(tmp_path / "csv" / f"{name}.csv", subset)
    with open_store(spark_store_url) as store:
        result = load_folder(store, subset, replace=True)
        assert result.ok and not result.skipped
        loaded = store.counts([TABLES_BY_NAME[t] for t in SPARK_TABLES])
        assert loaded == {t: counts[t] for t in SPARK_TABLES}
        expected = generate_cdm(config)
        assert _gi_bleed_persons(store) == _expected_gi_bleed_persons(expected)
