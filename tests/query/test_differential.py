"""Differential tests: random studies x small random CDM data; every SQL engine must give
the reference engine's answer (counts exactly, statistics to a relative 1e-9).

Budgets (env PASSERELLE_HYPOTHESIS_PROFILE): ``ci`` (default) runs 200 examples on DuckDB
and on PostgreSQL (each against the reference) and 20 on Spark; ``deep`` (`make test-deep`)
runs 2,000 and 100. Spark reuses one loaded store per dataset and varies the studies, since
each Spark statement costs a second or more.
"""

from __future__ import annotations

import os
import random

import pytest
from differential import random_cdm, studies
from engine_fixtures import make_runner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spec_cases import rows_match

from passerelle.query.reference import ReferenceEngine

PROFILES = {"ci": {"sql": 200, "spark": 20}, "deep": {"sql": 2000, "spark": 100}}
PROFILE = PROFILES[os.environ.get("PASSERELLE_HYPOTHESIS_PROFILE", "ci")]
SPARK_DATASETS = (11, 23)  # seeds of the datasets Spark's studies run on


def budget(engine: str) -> settings:
    return settings(
        max_examples=PROFILE[engine],
        deadline=None,
        derandomize=engine == "spark",
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
            HealthCheck.data_too_large,
        ],
    )


def agree(runner, data, study) -> None:
    expected = ReferenceEngine(data).execute(study)
    actual = runner.execute(study)
    for got, want in zip(actual.tables, expected.tables, strict=True):
        assert got.columns == want.columns, got.name
        assert rows_match(got.rows, want.rows), (
            f"{got.name}: {runner.name} {sorted(got.rows, key=str)} != "
            f"reference {sorted(want.rows, key=str)}"
        )


@pytest.fixture(
    scope="module",
    params=[pytest.param("duckdb"), pytest.param("postgres", marks=pytest.mark.postgres)],
)
def sql_runner(request, tmp_path_factory):
    yield from make_runner(request.param, tmp_path_factory.mktemp(f"diff-{request.param}"))


def test_sql_engines_agree_with_the_reference(sql_runner):
    @budget("sql")
    @given(seed=st.integers(0, 2**32 - 1), study=studies())
    def check(seed, study):
        data = random_cdm(random.Random(seed))
        sql_runner.load(data)
        agree(sql_runner, data, study)

    check()


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.parametrize("seed", SPARK_DATASETS)
def test_spark_agrees_with_the_reference(seed, tmp_path_factory):
    runners = make_runner("spark", tmp_path_factory.mktemp("diff-spark"))
    runner = next(runners)
    data = random_cdm(random.Random(seed))
    runner.load(data)
    per_dataset = max(1, PROFILE["spark"] // len(SPARK_DATASETS))

    @settings(budget("spark"), max_examples=per_dataset)
    @given(study=studies())
    def check(study):
        agree(runner, data, study)

    try:
        check()
    finally:
        runners.close()
