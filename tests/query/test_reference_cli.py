"""`passerelle study ...` end to end (a real DuckDB store, the reference engine)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from issue_specs import GI_BLEED
from spec_cases import CASES_BY_ID
from typer.testing import CliRunner

from passerelle.cdm.stores import open_store
from passerelle.query.commands import register


def cli(*args: str):  # type: ignore[no-untyped-def]
    """The `study` group in process (the full CLI imports every package: slow to start)."""
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None: ...

    return CliRunner().invoke(app, list(args))


@pytest.fixture
def store(duckdb_store_url):
    """The 'criteria-groups' spec case loaded into a DuckDB store."""
    case = CASES_BY_ID["criteria-groups"]
    with open_store(duckdb_store_url) as st:
        st.init()
        for table, rows in case.tables().items():
            cols = list(rows[0])
            marks = ", ".join("?" for _ in cols)
            for r in rows:
                st.query(
                    f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})",
                    [r[c] for c in cols],
                )
    return duckdb_store_url


def test_validate(tmp_path):
    good = tmp_path / "gi.yaml"
    good.write_text(GI_BLEED)
    res = cli("study", "validate", str(good))
    assert res.exit_code == 0 and "valid study 'gi-bleed'" in res.stdout


def test_validate_error_is_one_clean_message(tmp_path):
    """Through the real `passerelle` entry point: errors with paths, exit 2, no traceback."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(GI_BLEED.replace("occurrence: all", "occurence: all"))
    res = subprocess.run(
        [sys.executable, "-m", "passerelle", "study", "validate", str(bad)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == 2
    assert "cohort.entry.occurence: unknown key (did you mean 'occurrence'?)" in res.stderr
    assert "Traceback" not in res.stderr


def test_run_reference_json_and_csv(store, tmp_path):
    case = CASES_BY_ID["criteria-groups"]
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(case.spec))
    res = cli(
        "study", "run", str(spec), "--store", store, "--engine", "reference", "--format", "json",
        "--policy", "none",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert "none" in out.pop("policy")
    assert out == {
        "study": "case",
        "engine": "reference",
        "analyses": [
            {"name": "persons", "columns": ["persons"], "rows": [[2]]},
            {"name": "flow", "columns": ["step", "criterion", "persons"],
             "rows": [[0, "entry", 5], [1, "treated", 4], [2, "criteria[1]", 2]]},
        ],
    }  # fmt: skip
    res = cli(
        "study", "run", str(spec), "--store", store, "--engine", "reference", "--format", "csv",
        "--policy", "none",
    )  # fmt: skip
    assert res.stdout.splitlines()[:3] == ["# persons", "persons", "2"]


def test_run_applies_the_default_disclosure_policy_unless_told_none(store, tmp_path):
    case = CASES_BY_ID["criteria-groups"]
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(case.spec))
    res = cli(
        "study", "run", str(spec), "--store", store, "--engine", "reference", "--format", "json"
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["policy"] != "none"
    persons = next(a for a in out["analyses"] if a["name"] == "persons")
    assert persons["rows"] == [[None]]  # 2 persons: below the minimum cell size
    assert "suppressed" in out["flags"]["persons"]["0:persons"]
    table = cli("study", "run", str(spec), "--store", store, "--engine", "reference")
    assert "<11" in table.stdout


def test_import_atlas(tmp_path):
    from test_atlas import circe

    src = tmp_path / "cohort.json"
    src.write_text(json.dumps(circe()))
    out = tmp_path / "spec.yaml"
    res = cli("study", "import-atlas", str(src), "--out", str(out))
    assert res.exit_code == 0, res.output
    assert cli("study", "validate", str(out)).exit_code == 0
    src.write_text(json.dumps(circe(CensoringCriteria=[{"Death": {}}])))
    res = cli("study", "import-atlas", str(src))
    assert res.exit_code == 1
    assert "not converted: CensoringCriteria: is not supported" in res.output
    assert "study:" not in res.output  # no spec written


def test_check_concepts_on_a_store_without_vocabulary(duckdb_store_url):
    from passerelle.query.parse import check_concepts, parse_study

    with open_store(duckdb_store_url) as st:
        st.init()
        study = parse_study(GI_BLEED)
        assert check_concepts(study, st) == [
            "the store's concept table is empty: concept ids cannot be checked"
        ]
