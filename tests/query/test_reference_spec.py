"""Every spec case on the reference engine (the engine that defines the semantics)."""

from __future__ import annotations

import pytest
from spec_cases import CASES, assert_result_matches

from passerelle.query.model import result_columns
from passerelle.query.reference import ReferenceEngine


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_spec_case(case):
    study = case.study()
    result = ReferenceEngine(case.tables()).execute(study)
    assert result.engine == "reference"
    for analysis, table in zip(study.analyses, result.tables, strict=True):
        assert table.columns == result_columns(analysis)
        assert all(len(r) == len(table.columns) for r in table.rows)
    assert_result_matches(result, case.expected)


def test_every_analysis_of_every_case_is_checked():
    for case in CASES:
        names = {a.name for a in case.study().analyses}
        assert names == set(case.expected), case.id


@pytest.fixture(scope="module")
def duck(tmp_path_factory):
    from passerelle.cdm.stores import open_store

    store = open_store(f"duckdb:///{tmp_path_factory.mktemp('ref') / 'cdm.duckdb'}")
    store.init()
    yield store
    store.close()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_spec_case_from_store(duck, case):
    """Loaded from a real store, the engine reads every table the study needs
    (`model.tables_needed`) and gives the same answer."""
    for table in duck.existing_tables():
        duck.query(f"DELETE FROM {table}")
    for table, rows in case.tables().items():
        cols = list(rows[0]) if rows else []
        marks = ", ".join("?" for _ in cols)
        for r in rows:
            duck.query(
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", [r[c] for c in cols]
            )
    study = case.study()
    assert_result_matches(ReferenceEngine.from_store(duck, study).execute(study), case.expected)
