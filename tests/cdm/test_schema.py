"""The one declaration of the CDM tables against the OHDSI DDL it was generated from."""

import re

from passerelle.cdm.schema import TABLES, TABLES_BY_NAME
from tests.conftest import shared

DDL_TYPES = {
    "integer": {"INTEGER", "BIGINT"},
    "float": {"DOUBLE"},
    "numeric": {"DOUBLE"},
    "date": {"DATE"},
    "timestamp": {"TIMESTAMP"},
    "varchar": {"VARCHAR"},
    "text": {"VARCHAR"},
}


def test_there_are_39_tables_with_unique_names():
    assert len(TABLES) == 39
    assert len(TABLES_BY_NAME) == 39


def test_declaration_matches_the_ohdsi_duckdb_ddl_column_for_column():
    ddl = shared("omop-cdm-5.4", "duckdb", "OMOPCDM_duckdb_5.4_ddl.sql").read_text()
    blocks = re.findall(r"CREATE TABLE @cdmDatabaseSchema\.(\w+) \((.*?)\);", ddl, re.S)
    assert len(blocks) == 39
    for name, body in blocks:
        table = TABLES_BY_NAME[name]
        cols = [line.strip().rstrip(",") for line in body.strip().splitlines() if line.strip()]
        assert len(cols) == len(table.columns), name
        for line, col in zip(cols, table.columns, strict=True):
            m = re.match(r'"?(\w+)"?\s+(\w+)(?:\(\w+\))?\s+(NOT NULL|NULL)', line)
            assert m, line
            ddl_name, ddl_type, nullability = m.groups()
            assert ddl_name.lower() == col.name
            assert col.type in DDL_TYPES[ddl_type.lower()], (name, col.name, ddl_type)
            assert col.required == (nullability == "NOT NULL"), (name, col.name)


def test_primary_keys_match_the_ohdsi_primary_key_file():
    text = shared("omop-cdm-5.4", "duckdb", "OMOPCDM_duckdb_5.4_primary_keys.sql").read_text()
    declared = {(t.name, k) for t in TABLES for k in t.primary_key}
    published = {
        (t.lower(), k.lower())
        for t, k in re.findall(
            r"@cdmDatabaseSchema\.(\w+) ADD CONSTRAINT \w+ PRIMARY KEY \((\w+)\)", text
        )
    }
    assert declared == published


def test_non_concept_ids_are_64_bit_and_concept_ids_32_bit():
    for t in TABLES:
        for c in t.columns:
            if c.name.endswith("concept_id") and c.type in ("INTEGER", "BIGINT"):
                assert c.type == "INTEGER", (t.name, c.name)
            elif c.name.endswith("_id") and c.type in ("INTEGER", "BIGINT"):
                assert c.type == "BIGINT", (t.name, c.name)
