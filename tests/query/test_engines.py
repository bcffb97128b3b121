"""Every spec case on every engine (one `engine` fixture, as in ehrQL's spec tests).

The reference engine defines the answer; DuckDB, PostgreSQL and Spark must give the rows the
case expects, with exactly the columns `result_columns` defines.
"""

from __future__ import annotations

import pytest
from engine_fixtures import ENGINE_PARAMS, make_runner
from spec_cases import CASES, assert_result_matches

from passerelle.errors import Unsupported
from passerelle.query import model as m
from passerelle.query.engines import Capability, engine_class


@pytest.fixture(scope="module", params=ENGINE_PARAMS)
def engine(request, tmp_path_factory):
    yield from make_runner(request.param, tmp_path_factory.mktemp(f"engine-{request.param}"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_spec_case(engine, case):
    study = case.study()
    result = engine.run(case.tables(), study)
    assert result.engine == engine.name
    for analysis, table in zip(study.analyses, result.tables, strict=True):
        assert table.name == analysis.name
        assert table.columns == m.result_columns(analysis)
        assert all(len(r) == len(table.columns) for r in table.rows)
    assert_result_matches(result, case.expected)


def test_a_missing_capability_is_a_typed_error(tmp_path):
    """An engine declares what it supports; a study needing more fails before any SQL."""
    from passerelle.cdm.stores import open_store

    base = engine_class("duckdb")

    class Limited(base):  # type: ignore[misc, valid-type]
        capabilities = frozenset(set(Capability) - {Capability.SURVIVAL})

    case = next(c for c in CASES if any(isinstance(a, m.Survival) for a in c.study().analyses))
    store = open_store(f"duckdb://{tmp_path / 'x.duckdb'}")
    try:
        with pytest.raises(Unsupported, match="Kaplan-Meier"):
            Limited(store).execute(case.study())
    finally:
        store.close()
