"""The compiled SQL: golden files per dialect, and transpilation to other dialects.

A change in the generated SQL shows as a diff of tests/query/golden/<case>.<dialect>.sql.
To accept a change, rewrite the files and review the diff:

    PASSERELLE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/query/test_compile.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlglot
from issue_specs import CELECOXIB, GI_BLEED
from spec_cases import CASES

from passerelle.errors import Unsupported
from passerelle.query import model as m
from passerelle.query.compiler import compile_study, compiler_for
from passerelle.query.parse import parse_study

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("PASSERELLE_UPDATE_GOLDEN") == "1"
SPECS = {"gi_bleed": GI_BLEED, "celecoxib": CELECOXIB}
ENGINE_DIALECTS = ("duckdb", "postgres", "spark")
OTHER_DIALECTS = ("tsql", "bigquery", "snowflake", "trino")


@pytest.mark.parametrize("dialect", ENGINE_DIALECTS)
@pytest.mark.parametrize("case", sorted(SPECS))
def test_golden_sql(case, dialect):
    sql = compile_study(parse_study(SPECS[case]), dialect)
    path = GOLDEN / f"{case}.{dialect}.sql"
    if UPDATE or not path.exists():
        path.write_text(sql)
    assert sql == path.read_text(), f"{path.name} changed: review, then PASSERELLE_UPDATE_GOLDEN=1"


@pytest.mark.parametrize("dialect", ENGINE_DIALECTS + OTHER_DIALECTS)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_case_compiles_and_parses_back(case, dialect):
    """Every spec case compiles for every dialect, one statement per analysis, and sqlglot
    reads the SQL back in that dialect."""
    study = case.study()
    statements = compiler_for(dialect).statements(study)
    assert [a for a, _ in statements] == list(study.analyses)
    for _, sql in statements:
        assert len(sqlglot.parse(sql, read=dialect)) == 1


@pytest.mark.parametrize("dialect", ENGINE_DIALECTS)
def test_the_script_creates_the_cohort_once_then_one_statement_per_analysis(dialect):
    study = parse_study(CELECOXIB)
    script = sqlglot.parse(compile_study(study, dialect), read=dialect)
    tables = len(compiler_for(dialect).plan(study).tables)
    # Spark caches the steps two later ones read (entered, candidates) as tables of their own
    assert tables == (3 if dialect == "spark" else 1)
    assert len(script) == tables + len(study.analyses) + tables
    creates, analyses, drops = script[:tables], script[tables:-tables], script[-tables:]
    assert all(isinstance(c, (sqlglot.exp.Create, sqlglot.exp.Cache)) for c in creates)
    assert all(isinstance(d, sqlglot.exp.Drop) for d in drops)
    for statement in analyses:
        # no analysis recomputes the cohort: none reads a CDM table the entry events come from
        assert "drug_exposure" not in statement.sql(dialect)
        assert "study_cohort" in statement.sql(dialect)


def test_an_attrition_statement_is_self_contained():
    spec = CELECOXIB.replace("analyses:\n", "analyses:\n  - {name: flow, attrition: true}\n")
    study = parse_study(spec)
    plan = compiler_for("duckdb").plan(study)
    (flow, sql), *others = plan.analyses
    assert isinstance(flow, m.Attrition)
    assert "study_cohort" not in sql and "drug_exposure" in sql
    assert plan.tables and all("study_cohort" in s for _, s in others)


def test_attrition_alone_creates_no_cohort_table():
    spec = CELECOXIB.split("analyses:")[0] + "analyses:\n  - {name: flow, attrition: true}\n"
    plan = compiler_for("duckdb").plan(parse_study(spec))
    assert plan.tables == [] and plan.drop == [] and len(plan.analyses) == 1


def test_dialect_differences_live_in_dialect_classes():
    study = parse_study(CELECOXIB)
    duck, spark = compile_study(study, "duckdb"), compile_study(study, "spark")
    assert "index_date - 1" in duck and "DATE_ADD(c.index_date, -1)" in spark
    assert "CREATE TEMPORARY TABLE study_cohort AS" in duck
    assert "CACHE TABLE study_cohort AS" in spark and "DROP VIEW IF EXISTS study_cohort" in spark
    pg = compile_study(study, "postgres")
    assert "EXTRACT(YEAR FROM e.start_date) AS INT)" in pg


def test_names_never_reach_sql():
    """Study and analysis names (user text) appear nowhere in the SQL."""
    study = parse_study(
        CELECOXIB.replace("celecoxib-new-users", "Robert Tables").replace(
            "gi_bleed_1y", "DROP TABLE person"
        )
    )
    for dialect in ENGINE_DIALECTS:
        sql = compile_study(study, dialect)
        assert "Robert" not in sql and "DROP TABLE person" not in sql


def test_numbers_are_typed_literals():
    spec = {
        "study": "s",
        "cohort": {"entry": {"measurement": {"concepts": [3]}, "value": {"min": -1.5, "max": 0.1}}},
        "analyses": [{"name": "n", "count": "persons"}],
    }
    sql = compile_study(parse_study(spec), "postgres")
    assert "-CAST(1.5 AS DOUBLE PRECISION)" in sql and "CAST(0.1 AS DOUBLE PRECISION)" in sql


def test_an_unknown_dialect_is_unsupported():
    with pytest.raises(Unsupported):
        compiler_for("no-such-sql")


def test_result_columns_are_the_statement_columns():
    study = parse_study(CELECOXIB)
    for analysis, sql in compiler_for("duckdb").statements(study):
        select = sqlglot.parse_one(sql, read="duckdb")
        names = [e.alias_or_name for e in select.expressions]
        assert names == [c.name for c in m.result_columns(analysis)]
