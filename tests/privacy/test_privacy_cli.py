"""`passerelle extract` and `passerelle privacy ...` end to end on GiBleed (DuckDB)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import typer
import yaml
from typer.testing import CliRunner

from passerelle.cdm.load import load_folder
from passerelle.cdm.stores import open_store
from passerelle.federation.register import NodeRegister
from passerelle.privacy.commands import protect_for_cli, register
from passerelle.privacy.pipeline import cohort_rows
from passerelle.privacy.release import file_sha256
from passerelle.query.parse import parse_study
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


def passerelle(*args: str, data_dir, **env: str) -> subprocess.CompletedProcess:
    """The real command, as an operator runs it (errors as one line, exit codes)."""
    return subprocess.run(
        [sys.executable, "-m", "passerelle", *args],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PASSERELLE_DATA_DIR": str(data_dir),
            "PASSERELLE_LOG_LEVEL": "DEBUG",
            **env,
        },
        timeout=300,
    )


@pytest.fixture
def spec_and_policy(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    policy = tmp_path / "policy.yaml"
    policy.write_text("policy: minimal\nmin_cell: 11\nrounding: 5\n")
    return spec, policy


@pytest.mark.shared_data
def test_extract_is_refused_without_the_nodes_approval(gibleed_url, spec_and_policy, tmp_path):
    spec, policy = spec_and_policy
    data = tmp_path / "data"
    out = tmp_path / "out"
    args = (
        "extract", str(spec), "--store", gibleed_url, "--project", "p1",
        "--purpose", "research", "--policy", str(policy), "--out", str(out),
    )  # fmt: skip
    res = passerelle(*args, data_dir=data)
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert lines == ["error: project 'p1' is not approved by this node's reviewers"]
    assert "Traceback" not in res.stderr
    assert not out.exists() and not (data / "keys").exists()  # no key made, nothing written
    # approved for aggregates only (by hand, in the embedded node's register): still refused
    approve = ("node", "approve", "--project", "p1", "--purpose", "research", "--by", "CSE")
    assert passerelle(*approve, data_dir=data).returncode == 0
    res = passerelle(*args, data_dir=data)
    assert res.returncode == 2 and "not approved for output type" in res.stderr
    assert not out.exists()
    # approved for extracts, then revoked
    extract_ok = (*approve, "--output-type", "pseudonymized_extract")
    assert passerelle(*extract_ok, data_dir=data).returncode == 0
    assert passerelle("node", "revoke", "--project", "p1", data_dir=data).returncode == 0
    res = passerelle(*args, data_dir=data)
    assert res.returncode == 2 and "is not approved by this node" in res.stderr
    assert not out.exists() and not (data / "keys").exists()
    reg = NodeRegister(data / "node.db")
    assert [r["outcome"] for r in reg.extract_log()] == [
        "not_approved",
        "forbidden_output_type",
        "not_approved",
    ]
    reg.close()


@pytest.mark.shared_data
def test_extract_command(gibleed_url, spec_and_policy, tmp_path):
    spec, policy = spec_and_policy
    data = tmp_path / "data"
    register = tmp_path / "node.db"
    reg = NodeRegister(register)
    for project in ("p1", "p2"):
        reg.approve(project, "research", "extract", "CSE", "CSE-2026-7")
    reg.approve("p3", "teaching", "extract", "CSE")
    key = tmp_path / "keys" / "master.key"
    out = tmp_path / "out"

    def run(project: str, folder, purpose="research"):
        return passerelle(
            "extract", str(spec), "--store", gibleed_url, "--project", project,
            "--purpose", purpose, "--policy", str(policy), "--out", str(folder),
            "--key-file", str(key), "--register", str(register), data_dir=data,
        )  # fmt: skip

    res = run("p3", tmp_path / "other", purpose="research")  # approved for another purpose
    assert res.returncode == 2 and "not approved for purpose 'research'" in res.stderr
    assert not (tmp_path / "other").exists()
    res = run("p1", out)
    assert res.returncode == 0, res.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    table = pq.read_table(out / "extract.parquet")
    assert table.num_rows > 400 and "pseudonym" in table.column_names
    assert "person_id" not in table.column_names
    report = json.loads((out / "risk-report.json").read_text())
    assert report["records_in"] == 479 and report["k"] == 11
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["policy"].startswith("minimal@") and manifest["project"] == "p1"
    assert key.read_bytes().hex() not in res.stdout + res.stderr
    [refused, released] = reg.extract_log()
    assert refused["outcome"] == "forbidden_purpose" and refused["project_id"] == "p3"
    assert released["outcome"] == "released" and released["cohort_size"] == 479
    assert released["request_id"] == manifest["extract_id"] in res.stdout
    assert released["records_released"] == table.num_rows and released["k_reached"] >= 11
    assert released["files"]["extract.parquet"] == file_sha256(out / "extract.parquet")
    assert set(released["files"]) == {p.name for p in out.iterdir()}
    # no patient value in the output (logs at DEBUG included) nor in the register's record
    with open_store(gibleed_url) as st:
        study = {k: v for k, v in SPEC.items() if k != "extract"}
        cohort = cohort_rows(
            st, parse_study({**study, "analyses": [{"name": "n", "count": "persons"}]})
        )
    said = res.stdout + res.stderr
    record = json.dumps(reg.extract_log(), default=str)
    for text in (said, record):
        assert not set(table.column("pseudonym").to_pylist()) & set(
            re.findall(r"[0-9a-f]{32}", text)
        )
        assert not {str(d) for d in cohort.column("index_date").to_pylist()} & set(
            re.findall(r"\d{4}-\d{2}-\d{2}", text)
        )
        ids = {str(i) for i in cohort.column("person_id").to_pylist()}
        # clock readings (the record's timestamps) are not patient values: their digits would
        # match small person ids by chance
        clockless = re.sub(
            r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)?", "", text
        )
        numbers = set(re.findall(r"(?<![\w.-])\d+(?![\w.-])", clockless))
        aggregates = {str(v) for v in (479, table.num_rows, 11, released["k_reached"], 2, 1)}
        assert not (ids & numbers) - aggregates
    # another project: other pseudonyms for the same persons
    out2 = tmp_path / "out2"
    res = run("p2", out2)
    assert res.returncode == 0, res.stderr
    other = pq.read_table(out2 / "extract.parquet")
    assert not set(table.column("pseudonym").to_pylist()) & set(
        other.column("pseudonym").to_pylist()
    )
    reg.close()


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


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "cohort",
    [
        SPEC["cohort"],
        {
            "entry": {"drug": {"concepts": [1118084], "descendants": True}, "occurrence": "all"},
            "observation": {"prior_days": 0},
            "exit": {"days": 30, "collapse_days": 7},
        },
    ],
    ids=["gi-bleed-first", "celecoxib-all-exit-30d"],
)
def test_cohort_rows_are_the_reference_engines_cohort(gibleed_url, cohort):
    """The extract's members come from SQL on the store; the reference engine is the oracle."""
    from passerelle.query.reference import ReferenceEngine

    study = parse_study(
        {"study": "s", "cohort": cohort, "analyses": [{"name": "n", "count": "persons"}]}
    )
    with open_store(gibleed_url) as st:
        rows = cohort_rows(st, study)
        expected = ReferenceEngine.from_store(st, study).cohort(study.cohort)
        people = {
            r[0]: r[1:]
            for r in st.query(
                "SELECT person_id, year_of_birth, gender_concept_id FROM " + st.qualified("person")
            ).rows
        }
    got = list(
        zip(
            *(rows.column(c).to_pylist() for c in ("person_id", "index_date", "exit_date")),
            strict=True,
        )
    )
    assert len(got) > 100
    assert sorted(got) == sorted((int(e.person), e.index, e.exit) for e in expected)
    for pid, index, age, sex in zip(
        *(rows.column(c).to_pylist() for c in ("person_id", "index_date", "age", "sex")),
        strict=True,
    ):
        yob, gender = people[pid]
        assert age == index.year - yob
        assert sex == {8532: "F", 8507: "M"}.get(gender, str(gender))


@pytest.mark.shared_data
def test_extract_uses_the_register_store_and_policy_of_node_toml(
    gibleed_url, spec_and_policy, tmp_path
):
    from passerelle.federation.keys import KeyPair

    spec, policy = spec_and_policy
    node_dir = tmp_path / "node"
    KeyPair.generate("chu-a").write(node_dir / "keys")
    (node_dir / "node.toml").write_text(
        "[node]\n"
        'name = "chu-a"\n'
        f'store = "{gibleed_url}"\n'
        'private_key = "keys/chu-a.key"\n'
        f'policy = "{policy}"\n'
        'database = "registers/chu-a.db"\n'
    )
    register = node_dir / "registers" / "chu-a.db"
    out = tmp_path / "out"
    args = (
        "extract", str(spec), "--project", "p1", "--purpose", "research", "--out", str(out),
        "--node-config", str(node_dir / "node.toml"), "--key-file", str(tmp_path / "k.key"),
    )  # fmt: skip
    res = passerelle(*args, data_dir=tmp_path / "data")
    assert res.returncode == 2 and "not approved" in res.stderr and not out.exists()
    reg = NodeRegister(register)  # the refusal is in the node's register, not the default one
    assert [r["outcome"] for r in reg.extract_log()] == ["not_approved"]
    assert not (tmp_path / "data" / "node.db").exists()
    reg.approve("p1", "research", "pseudonymized_extract", "CSE")
    res = passerelle(*args, data_dir=tmp_path / "data")
    assert res.returncode == 0, res.stderr
    assert "minimal@" in res.stdout  # the node's policy, not the built-in default
    assert [r["outcome"] for r in reg.extract_log()] == ["not_approved", "released"]
    reg.close()
