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
