"""Bad input loses nothing and is named; formats and versions are recognised."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from passerelle.cdm.load import load_folder
from passerelle.cdm.stores import open_store
from passerelle.errors import LoadRefused

PERSON_HEADER = "person_id,gender_concept_id,year_of_birth,race_concept_id,ethnicity_concept_id"


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def good_folder(folder: Path) -> Path:
    write(folder, "PERSON.csv", PERSON_HEADER.upper() + "\n1,8507,1950,0,0\n2,8532,1960,0,0\n")
    write(
        folder,
        "observation_period.csv.gz",
        "observation_period_id,person_id,observation_period_start_date,"
        "observation_period_end_date,period_type_concept_id\n"
        "1,1,2000-01-01,2010-12-31,44814724\n2,2,2001-05-01,2011-01-31,44814724\n",
    )
    return folder


def test_malformed_row_is_named_by_file_line_and_column_and_its_table_rolled_back(
    store_url, tmp_path
):
    folder = good_folder(tmp_path / "in")
    write(
        folder,
        "death.csv",
        "person_id,death_date,death_datetime,death_type_concept_id,cause_concept_id,"
        "cause_source_value,cause_source_concept_id\n"
        "1,2011-01-01,,32817,0,,0\n"
        "2,2011-02-31,,32817,0,,0\n"
        "3,2011-03-01,,32817,0,,0\n",
    )
    with open_store(store_url) as store:
        report = load_folder(store, folder)
        counts = store.counts()
    assert not report.ok
    [failed] = report.failed
    assert failed.table == "death"
    assert [str(e) for e in failed.errors] == ["death.csv:3: column death_date: not a valid DATE"]
    assert counts["death"] == 0  # the bad table as a whole
    assert counts["person"] == 2 and counts["observation_period"] == 2  # the others load


def test_error_messages_never_quote_the_data(duckdb_store_url, tmp_path):
    folder = tmp_path / "in"
    write(folder, "person.csv", PERSON_HEADER + "\n1,8507,SECRET-VALUE,0,0\n")
    with open_store(duckdb_store_url) as store:
        report = load_folder(store, folder)
    text = json.dumps(report.to_dict())
    assert "SECRET-VALUE" not in text
    assert "person.csv:2: column year_of_birth: not a valid INTEGER" in text


def test_wrong_number_of_fields(duckdb_store_url, tmp_path):
    folder = tmp_path / "in"
    write(folder, "person.csv", PERSON_HEADER + "\n1,8507,1950,0,0\n2,8532,1960,0\n")
    with open_store(duckdb_store_url) as store:
        report = load_folder(store, folder)
    assert [str(e) for e in report.failed[0].errors] == [
        "person.csv:3: column ethnicity_concept_id: too few fields"
    ]


def test_missing_required_column_refuses_the_file(duckdb_store_url, tmp_path):
    folder = tmp_path / "in"
    write(folder, "person.csv", "person_id,gender_concept_id\n1,8507\n")
    with open_store(duckdb_store_url) as store:
        report = load_folder(store, folder)
    assert "required column(s) year_of_birth, race_concept_id, ethnicity_concept_id" in str(
        report.failed[0].errors[0]
    )


def test_loading_twice_is_refused_unless_replace(store_url, tmp_path):
    folder = good_folder(tmp_path / "in")
    with open_store(store_url) as store:
        load_folder(store, folder)
        with pytest.raises(LoadRefused, match="already hold rows; loading again needs --replace"):
            load_folder(store, folder)
        report = load_folder(store, folder, replace=True)
        assert report.ok
        assert store.counts()["person"] == 2


def test_athena_vocabulary_format_tab_separated_with_compact_dates(store_url, tmp_path):
    folder = tmp_path / "athena"
    write(
        folder,
        "CONCEPT.csv",
        "concept_id\tconcept_name\tdomain_id\tvocabulary_id\tconcept_class_id\t"
        "standard_concept\tconcept_code\tvalid_start_date\tvalid_end_date\tinvalid_reason\n"
        "192671\tGastrointestinal hemorrhage\tCondition\tSNOMED\tClinical Finding\tS\t74474003\t"
        "19700101\t20991231\t\n"
        '1118084\tcelecoxib 5" "quoted\tDrug\tRxNorm\tIngredient\tS\t140587\t19700101\t20991231\t\n',
    )
    with open_store(store_url) as store:
        report = load_folder(store, folder)
        assert report.ok, report.to_dict()
        rows = store.query(
            f"SELECT concept_id, concept_name, valid_start_date FROM {store.qualified('concept')} "
            "ORDER BY concept_id"
        ).rows
    assert [r[0] for r in rows] == [192671, 1118084]
    assert rows[0][1] == "Gastrointestinal hemorrhage"
    assert rows[1][1] == 'celecoxib 5" "quoted'
    assert str(rows[0][2]) == "1970-01-01"


def test_cli_names_unknown_files_and_exits_non_zero_listing_failures(tmp_path):
    folder = good_folder(tmp_path / "in")
    write(folder, "notes.txt", "hello")
    write(folder, "my_table.csv", "a,b\n1,2\n")
    write(folder, "death.csv", "person_id,death_date,death_type_concept_id\n1,not-a-date,1\n")
    store = f"duckdb:///{tmp_path / 'cdm.duckdb'}"
    proc = run_cli("cdm", "load", str(folder), "--store", store)
    assert proc.returncode == 1
    out = proc.stdout
    assert "skipped my_table.csv: no CDM v5.4 table is named my_table" in out
    assert "skipped notes.txt" in out
    assert "failed  death (death.csv)" in out
    assert "death.csv:2: column death_date: not a valid DATE" in out
    assert "Traceback" not in proc.stderr
    counts = json.loads(run_cli("cdm", "counts", "--store", store, "--format", "json").stdout)
    assert counts["person"] == 2 and counts["death"] == 0


@pytest.mark.parametrize(
    "url, message",
    [
        ("oracle://h/db", "unknown store scheme 'oracle'"),
        ("postgresql://postgres@127.0.0.1:1/test", "cannot connect to PostgreSQL store"),
    ],
)
def test_cli_bad_store_is_one_line_and_exit_code_2(url, message):
    proc = run_cli("cdm", "counts", "--store", url)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cdm_init_creates_39_tables_and_is_idempotent(store_url):
    proc = run_cli("cdm", "init", "--store", store_url)
    assert proc.returncode == 0, proc.stderr
    assert "created 39 table(s)" in proc.stdout
    again = run_cli("cdm", "init", "--store", store_url)
    assert "all 39 already exist" in again.stdout
    counts = json.loads(run_cli("cdm", "counts", "--store", store_url, "-f", "json").stdout)
    assert len(counts) == 39 and set(counts.values()) == {0}


def test_enforced_keys_refuse_a_duplicate_and_name_the_key(duckdb_store_url, tmp_path):
    folder = tmp_path / "in"
    write(folder, "person.csv", PERSON_HEADER + "\n1,8507,1950,0,0\n1,8532,1960,0,0\n")
    with open_store(duckdb_store_url) as store:
        store.init(enforce_keys=True)
        report = load_folder(store, folder)
        assert store.counts()["person"] == 0
    assert [str(e) for e in report.failed[0].errors] == [
        "person.csv: column person_id: duplicate primary key"
    ]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "passerelle", *args], capture_output=True, text=True, timeout=600
    )
