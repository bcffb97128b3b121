"""The seeded synthetic CDM: deterministic, consistent, plausible."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections import defaultdict
from datetime import date
from itertools import pairwise

import pytest

from passerelle.cdm.schema import TABLES, TABLES_BY_NAME
from passerelle.demo import vocabulary as v
from passerelle.demo.synthetic import (
    SITE_ID_STRIDE,
    SyntheticConfig,
    generate_cdm,
    site_configs,
    site_offset,
    write_csv,
)
from passerelle.errors import ConfigError

EVENT_DATES = {
    "visit_occurrence": "visit_start_date",
    "condition_occurrence": "condition_start_date",
    "drug_exposure": "drug_exposure_start_date",
    "procedure_occurrence": "procedure_date",
    "measurement": "measurement_date",
    "observation": "observation_date",
}


@pytest.fixture(scope="module")
def cdm():
    """The default demo CDM (3,000 persons, seed 42), drawn once for the module."""
    return generate_cdm(SyntheticConfig())


@pytest.fixture(scope="module")
def small():
    return generate_cdm(SyntheticConfig(n_persons=300, seed=7))


def _persons_with(rows, concept_col, concepts):
    return {r["person_id"] for r in rows if r[concept_col] in concepts}


def test_same_seed_gives_byte_identical_files(tmp_path):
    config = SyntheticConfig(n_persons=200, seed=11)
    a = tmp_path / "a"
    b = tmp_path / "b"
    write_csv(generate_cdm(config), a)
    write_csv(generate_cdm(config), b)
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    assert names == sorted(f"{t.name}.csv" for t in TABLES)
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    other = tmp_path / "c"
    write_csv(generate_cdm(SyntheticConfig(n_persons=200, seed=12)), other)
    assert (other / "person.csv").read_bytes() != (a / "person.csv").read_bytes()


def test_files_do_not_depend_on_the_process(tmp_path):
    """Another interpreter with another hash seed writes the same bytes."""
    script = (
        "import sys; from pathlib import Path; "
        "from passerelle.demo.synthetic import SyntheticConfig, generate; "
        "generate(Path(sys.argv[1]), SyntheticConfig(n_persons=60, seed=5))"
    )
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / hash_seed)], env=env, check=True
        )
    for path in sorted((tmp_path / "1").iterdir()):
        assert path.read_bytes() == (tmp_path / "2" / path.name).read_bytes(), path.name


def test_a_smaller_cdm_is_a_prefix_of_a_larger_one(small):
    fewer = generate_cdm(SyntheticConfig(n_persons=100, seed=7))
    assert fewer.tables["person"] == small.tables["person"][:100]


def test_headers_are_the_declared_columns(tmp_path, small):
    counts = write_csv(small, tmp_path)
    for table in TABLES:
        with (tmp_path / f"{table.name}.csv").open(newline="") as fh:
            rows = list(csv.reader(fh))
        assert tuple(rows[0]) == table.column_names
        assert len(rows) - 1 == counts[table.name]
        for row in rows[1:]:
            assert len(row) == len(table.column_names)


def test_required_columns_are_filled(small):
    for name, rows in small.tables.items():
        required = [c.name for c in TABLES_BY_NAME[name].columns if c.required]
        for row in rows:
            missing = [c for c in required if row.get(c) is None or row.get(c) == ""]
            assert not missing, (name, missing)


def test_text_fits_the_declared_sizes():
    cdm = generate_cdm(SyntheticConfig(n_persons=30, site="Centre hospitalier " + "x" * 300))
    for name, rows in cdm.tables.items():
        sized = [c for c in TABLES_BY_NAME[name].columns if c.type == "VARCHAR" and c.size]
        for row in rows:
            for col in sized:
                value = row.get(col.name)
                assert value is None or len(str(value)) <= col.size, (name, col.name)


def test_every_event_belongs_to_a_known_person_and_visit(small):
    persons = {r["person_id"] for r in small.tables["person"]}
    visits = {r["visit_occurrence_id"]: r for r in small.tables["visit_occurrence"]}
    for name in (*EVENT_DATES, "observation_period", "death", "drug_era", "condition_era"):
        for row in small.tables.get(name, []):
            assert row["person_id"] in persons, name
            vid = row.get("visit_occurrence_id")
            if vid is not None:
                assert visits[vid]["person_id"] == row["person_id"], name


def test_primary_keys_are_unique(small):
    for name, rows in small.tables.items():
        key = TABLES_BY_NAME[name].primary_key
        if key:
            values = [tuple(r[k] for k in key) for r in rows]
            assert len(values) == len(set(values)), name


def test_every_concept_id_is_in_the_concept_table(small):
    concepts = {r["concept_id"] for r in small.tables["concept"]}
    for name, rows in small.tables.items():
        columns = [
            c.name for c in TABLES_BY_NAME[name].columns if c.references == "concept.concept_id"
        ]
        for row in rows:
            for col in columns:
                value = row.get(col)
                assert value is None or value in concepts, (name, col, value)


def test_concept_ancestor_has_self_rows_and_real_hierarchies(small):
    standard = {r["concept_id"] for r in small.tables["concept"] if r["standard_concept"] == "S"}
    pairs = {
        (r["ancestor_concept_id"], r["descendant_concept_id"]): r["min_levels_of_separation"]
        for r in small.tables["concept_ancestor"]
    }
    for cid in standard:
        assert pairs[(cid, cid)] == 0
    assert pairs[(v.GI_BLEED, v.ACUTE_GI_BLEED)] == 1
    assert (v.CELECOXIB, v.CELECOXIB_200) in pairs
    # descendants matter: the data uses child concepts, not only the named parents.
    used = {r["condition_concept_id"] for r in small.tables["condition_occurrence"]}
    assert {v.GI_BLEED, v.ACUTE_GI_BLEED} <= used
    drugs = {r["drug_concept_id"] for r in small.tables["drug_exposure"]}
    assert v.CELECOXIB not in drugs and v.CELECOXIB_200 in drugs
    eras = {r["drug_concept_id"] for r in small.tables["drug_era"]}
    assert v.CELECOXIB in eras


def test_source_codes_map_to_standard_concepts(small):
    maps = {
        (r["concept_id_1"], r["concept_id_2"])
        for r in small.tables["concept_relationship"]
        if r["relationship_id"] == "Maps to"
    }
    assert (v.ICD10_GI_BLEED, v.GI_BLEED) in maps
    icd = [
        r for r in small.tables["condition_occurrence"] if r["condition_source_value"] == "K92.2"
    ]
    assert icd and all(r["condition_source_concept_id"] == v.ICD10_GI_BLEED for r in icd)


def test_sites_have_disjoint_ids(small):
    other = generate_cdm(SyntheticConfig(n_persons=300, seed=7, site="b", id_offset=site_offset(1)))
    for name in ("person", "visit_occurrence", "condition_occurrence", "drug_exposure"):
        key = TABLES_BY_NAME[name].primary_key[0]
        a = {r[key] for r in small.tables[name]}
        b = {r[key] for r in other.tables[name]}
        assert max(a) < SITE_ID_STRIDE <= min(b), name
    # the site is part of the seed: another hospital has other patients
    assert [r["year_of_birth"] for r in other.tables["person"]] != [
        r["year_of_birth"] for r in small.tables["person"]
    ]


def test_site_configs_give_each_hospital_its_own_ids():
    configs = site_configs(["Hôpital A", "Hôpital B", "Hôpital C"], n_persons=20, seed=1)
    assert [c.id_offset for c in configs] == [0, SITE_ID_STRIDE, 2 * SITE_ID_STRIDE]
    ids = [{r["person_id"] for r in generate_cdm(c).tables["person"]} for c in configs]
    assert sum(len(i) for i in ids) == len(set().union(*ids)) == 60


def test_dates_are_ordered_and_life_bounded(cdm):
    born = {r["person_id"]: date(r["year_of_birth"], 1, 1) for r in cdm.tables["person"]}
    died = {r["person_id"]: r["death_date"] for r in cdm.tables["death"]}
    pairs = (
        ("observation_period", "observation_period_start_date", "observation_period_end_date"),
        ("visit_occurrence", "visit_start_date", "visit_end_date"),
        ("drug_exposure", "drug_exposure_start_date", "drug_exposure_end_date"),
        ("drug_era", "drug_era_start_date", "drug_era_end_date"),
        ("condition_era", "condition_era_start_date", "condition_era_end_date"),
    )
    for name, start, end in pairs:
        for r in cdm.tables[name]:
            assert r[start] <= r[end], name
    for name, col in EVENT_DATES.items():
        for r in cdm.tables[name]:
            assert born[r["person_id"]] <= r[col], name
            if r["person_id"] in died:
                assert r[col] <= died[r["person_id"]], name
    periods = defaultdict(list)
    for r in cdm.tables["observation_period"]:
        periods[r["person_id"]].append(
            (r["observation_period_start_date"], r["observation_period_end_date"])
        )
    assert set(periods) == set(born)
    for pid, spans in periods.items():
        spans.sort()
        for (_, e1), (s2, _) in pairwise(spans):
            assert e1 < s2
        if pid not in died:
            assert (spans[-1][1] - spans[0][0]).days >= 365  # multi-year follow-up
        else:
            assert spans[-1][1] <= died[pid]


def test_a_small_documented_share_of_events_lies_outside_observation(cdm):
    periods = defaultdict(list)
    for r in cdm.tables["observation_period"]:
        periods[r["person_id"]].append(
            (r["observation_period_start_date"], r["observation_period_end_date"])
        )
    total = outside = 0
    for name, col in EVENT_DATES.items():
        for r in cdm.tables[name]:
            total += 1
            day = r[col]
            if not any(s <= day <= e for s, e in periods[r["person_id"]]):
                outside += 1
    assert 0.001 < outside / total < 0.03


def test_prevalences_are_plausible(cdm):
    persons = cdm.tables["person"]
    n = len(persons)
    assert n == 3000
    women = sum(r["gender_concept_id"] == v.FEMALE for r in persons)
    assert 0.45 < women / n < 0.6
    years = [r["year_of_birth"] for r in persons]
    assert min(years) <= 1935 and max(years) >= 2005
    assert all(1930 <= y <= 2010 for y in years)
    cond = cdm.tables["condition_occurrence"]
    diabetics = _persons_with(cond, "condition_concept_id", {v.T2DM})
    assert 0.06 < len(diabetics) / n < 0.25
    hypertensives = _persons_with(
        cond, "condition_concept_id", {v.HYPERTENSION, v.ESSENTIAL_HYPERTENSION}
    )
    assert 0.1 < len(hypertensives) / n < 0.4
    bleeders = _persons_with(cond, "condition_concept_id", {v.GI_BLEED, v.ACUTE_GI_BLEED})
    assert 0.02 < len(bleeders) / n < 0.15
    assert 0.01 < len(cdm.tables["death"]) / n < 0.15
    visit_kinds = {r["visit_concept_id"] for r in cdm.tables["visit_occurrence"]}
    assert visit_kinds == {v.INPATIENT, v.OUTPATIENT, v.EMERGENCY}


def test_diabetics_get_metformin_and_worse_hba1c(cdm):
    cond, drugs = cdm.tables["condition_occurrence"], cdm.tables["drug_exposure"]
    diabetics = _persons_with(cond, "condition_concept_id", {v.T2DM})
    metformin = _persons_with(drugs, "drug_concept_id", {v.METFORMIN_500_ER})
    assert metformin <= diabetics
    assert len(metformin) / len(diabetics) > 0.7
    values = defaultdict(list)
    for r in cdm.tables["measurement"]:
        if r["measurement_concept_id"] == v.HBA1C:
            assert r["unit_concept_id"] == v.PERCENT
            values[r["person_id"] in diabetics].append(r["value_as_number"])
    mean = {k: sum(x) / len(x) for k, x in values.items()}
    assert mean[True] > mean[False] + 1


def test_measurements_carry_values_and_units(cdm):
    units = defaultdict(set)
    for r in cdm.tables["measurement"]:
        assert isinstance(r["value_as_number"], (int, float))
        units[r["measurement_concept_id"]].add(r["unit_concept_id"])
    assert units[v.SYSTOLIC_BP] == {v.MMHG}
    assert units[v.BODY_WEIGHT] == {v.KILOGRAM, v.NO_MATCH}  # the unit-less quirk
    assert units[v.HBA1C] == {v.PERCENT}


def test_nsaid_exposure_raises_the_gi_bleed_risk(cdm):
    bleeds = defaultdict(list)
    for r in cdm.tables["condition_occurrence"]:
        if r["condition_concept_id"] in (v.GI_BLEED, v.ACUTE_GI_BLEED):
            bleeds[r["person_id"]].append(r["condition_start_date"])
    first_nsaid: dict[int, date] = {}
    for r in cdm.tables["drug_exposure"]:
        if r["drug_concept_id"] in (v.CELECOXIB_200, v.DICLOFENAC_75):
            pid, day = r["person_id"], r["drug_exposure_start_date"]
            first_nsaid[pid] = min(day, first_nsaid.get(pid, day))
    exposed = [
        any(1 <= (b - day).days <= 365 for b in bleeds[pid]) for pid, day in first_nsaid.items()
    ]
    unexposed = [
        bool(bleeds[r["person_id"]])
        for r in cdm.tables["person"]
        if r["person_id"] not in first_nsaid
    ]
    # one year after a first NSAID against the whole follow-up (about 6 years) of the others
    assert sum(exposed) / len(exposed) > sum(unexposed) / len(unexposed)


def test_eras_collapse_exposures(cdm):
    exposures = defaultdict(int)
    for r in cdm.tables["drug_exposure"]:
        exposures[(r["person_id"], v.INGREDIENT_OF[r["drug_concept_id"]])] += 1
    eras = defaultdict(int)
    for r in cdm.tables["drug_era"]:
        eras[(r["person_id"], r["drug_concept_id"])] += r["drug_exposure_count"]
    assert eras == exposures
    assert len(cdm.tables["drug_era"]) < len(cdm.tables["drug_exposure"])


@pytest.mark.parametrize(
    "kwargs",
    [{"n_persons": 0}, {"start_year": 2020, "end_year": 2021}, {"id_offset": -1}, {"site": " "}],
)
def test_bad_configuration_is_a_user_error(kwargs):
    with pytest.raises(ConfigError):
        SyntheticConfig(**kwargs)
