"""`passerelle extract` and `passerelle privacy ...` end to end on GiBleed (DuckDB)."""

from __future__ import annotations

import json
import stat

import pyarrow.parquet as pq
import pytest
import typer
import yaml
from typer.testing import CliRunner

from passerelle.cdm.load import load_folder
from passerelle.cdm.stores import open_store
from passerelle.privacy.commands import protect_for_cli, register
from passerelle.query.result import AggregateTable, ResultColumn, StudyResult


def cli(*args: str):
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None: ...

    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def gibleed_url(gibleed_dir, tmp_path_factory):
    url = f"duckdb:///{tmp_path_factory.mktemp('cli') / 'cdm.duckdb'}"
    with open_store(url) as st:
        st.init()
        load_folder(st, gibleed_dir)
    return url


SPEC = {
    "study": "gi-bleed-extract",
    "cohort": {
        "entry": {"condition": {"concepts": [192671], "descendants": True}, "occurrence": "first"}
    },
    "extract": {
        "quasi_identifiers": [
            {"column": "age", "hierarchy": "age"},
            "sex",
            {"column": "index_date", "hierarchy": "date"},
            "race_concept_id",
        ],
        "keep": ["exit_date"],
    },
}


@pytest.mark.shared_data
def test_extract_command(gibleed_url, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    policy = tmp_path / "policy.yaml"
    policy.write_text("policy: minimal\nmin_cell: 11\nrounding: 5\n")
    key = tmp_path / "keys" / "master.key"
    out = tmp_path / "out"
    res = cli(
        "extract", str(spec), "--store", gibleed_url, "--project", "p1",
        "--policy", str(policy), "--out", str(out), "--key-file", str(key),
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    table = pq.read_table(out / "extract.parquet")
    assert table.num_rows > 400 and "pseudonym" in table.column_names
    assert "person_id" not in table.column_names
    report = json.loads((out / "risk-report.json").read_text())
    assert report["records_in"] == 479 and report["k"] == 11
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["policy"].startswith("minimal@") and manifest["project"] == "p1"
    assert key.read_bytes().hex() not in res.output
    # another project: other pseudonyms for the same persons
    out2 = tmp_path / "out2"
    res = cli(
        "extract", str(spec), "--store", gibleed_url, "--project", "p2",
        "--policy", str(policy), "--out", str(out2), "--key-file", str(key),
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    other = pq.read_table(out2 / "extract.parquet")
    assert not set(table.column("pseudonym").to_pylist()) & set(
        other.column("pseudonym").to_pylist()
    )


def test_policy_and_keygen_commands(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("policy: minimal\nmin_cell: 11\nrounding: 5\n")
    res = cli("privacy", "policy", str(policy))
    assert res.exit_code == 0 and "minimal@" in res.output and "feasibility_epsilon" in res.output
    key = tmp_path / "k.key"
    assert cli("privacy", "keygen", "--key-file", str(key)).exit_code == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert cli("privacy", "keygen", "--key-file", str(key)).exit_code != 0


def test_policy_none_says_so():
    cols = (ResultColumn("persons", "count"),)
    result = StudyResult("s", "duckdb", [AggregateTable("size", "count", cols, [(3,)])])
    out, note = protect_for_cli(result, "none")
    assert out.table("size").rows == [(3,)] and "local steward only" in note
    out, note = protect_for_cli(result, None)
    assert out.table("size").rows == [(None,)] and note.startswith("policy: default@")
