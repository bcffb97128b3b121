"""`SQLEngine.cohort_members`: the cohort's entries computed in SQL agree with the reference
engine's `cohort` on every engine, for every spec case and for random studies and data."""

from __future__ import annotations

import random
from typing import Any

import pyarrow as pa
import pytest
from differential import random_cdm, studies
from engine_fixtures import make_runner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spec_cases import CASES

from passerelle.cdm.stores import open_store
from passerelle.query import model as m
from passerelle.query.engines import engine_for
from passerelle.query.reference import ReferenceEngine

SPARK_CASES = [c for c in CASES if c.id.startswith(("exit-", "entry-occurrence", "criteria-"))]


def reference_members(data: Any, study: m.Study) -> list[tuple[Any, ...]]:
    entries = ReferenceEngine(data).cohort(study.cohort)
    return sorted((int(e.person), e.index, e.exit) for e in entries)


def sql_members(store: Any, study: m.Study) -> list[tuple[Any, ...]]:
    table = engine_for(store).cohort_members(study)
    assert table.schema == pa.schema(
        [("person_id", pa.int64()), ("index_date", pa.date32()), ("exit_date", pa.date32())]
    )
    rows = list(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True))
    assert rows == sorted(rows, key=lambda r: (r[0], r[1])), "not ordered by person, index"
    return sorted(rows)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("duckdb"),
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("spark", marks=[pytest.mark.spark, pytest.mark.slow]),
    ],
)
def runner(request, tmp_path_factory):
    yield from make_runner(request.param, tmp_path_factory.mktemp(f"members-{request.param}"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_members_agree_with_the_reference(runner, case):
    if runner.name == "spark" and case not in SPARK_CASES:
        pytest.skip("Spark runs the exit, occurrence and criteria cases (a second each)")
    data = case.tables()
    runner.load(data)
    study = case.study()
    assert sql_members(runner._store, study) == reference_members(data, study)


def test_members_on_an_empty_cohort_keep_their_columns(store_url):
    """No entry matches: an empty table with the promised schema (the store has every
    table the study reads, all empty)."""
    from passerelle.cdm.schema import TABLES_BY_NAME

    case = next(c for c in CASES if c.id == "empty-cohort")
    with open_store(store_url) as store:
        store.init([TABLES_BY_NAME[t] for t in m.tables_needed(case.study())])
        table = engine_for(store).cohort_members(case.study())
        assert table.num_rows == 0
        assert table.column_names == ["person_id", "index_date", "exit_date"]


@pytest.fixture(
    scope="module",
    params=[pytest.param("duckdb"), pytest.param("postgres", marks=pytest.mark.postgres)],
)
def sql_runner(request, tmp_path_factory):
    yield from make_runner(request.param, tmp_path_factory.mktemp(f"members-h-{request.param}"))


def test_members_of_random_studies_agree_with_the_reference(sql_runner):
    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
            HealthCheck.data_too_large,
        ],
    )
    @given(seed=st.integers(0, 2**32 - 1), study=studies())
    def check(seed, study):
        data = random_cdm(random.Random(seed))
        store = sql_runner.small.load(data)
        assert sql_members(store, study) == reference_members(data, study)

    check()
