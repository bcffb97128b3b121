"""Releasing an extract against the node's own register (a real SQLite NodeRegister): the
approval check, the record of each release or refusal, nothing in --out unless recorded."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pyarrow.parquet as pq
import pytest

from passerelle.errors import UserError
from passerelle.federation.errors import Refused
from passerelle.federation.register import NodeRegister, SyncedDecision
from passerelle.privacy.extract import ExtractRefused, ExtractSpec
from passerelle.privacy.policy import PolicyRefusal, parse_policy
from passerelle.privacy.pseudonym import Pseudonymizer
from passerelle.privacy.release import EXTRACT_OUTPUT_TYPES, ExtractRequest, release_extract
from passerelle.privacy.synthetic import QUASI_IDENTIFIERS, synthetic_cohort

POLICY = parse_policy({"policy": "t"})
SPEC = ExtractSpec.parse({"quasi_identifiers": QUASI_IDENTIFIERS, "keep": ["measured_on"]})
ROWS = synthetic_cohort(3000, seed=7)
RECORD_KEYS = {
    "id",
    "at",
    "project_id",
    "request_id",
    "outcome",
    "spec_sha256",
    "purpose",
    "policy",
    "reason",
    "cohort_size",
    "records_released",
    "k",
    "k_reached",
    "l",
    "out_dir",
    "files",
}


@pytest.fixture
def register(tmp_path):
    reg = NodeRegister(tmp_path / "node.db")
    yield reg
    reg.close()


def request(tmp_path, purpose="research", project="p1"):
    return ExtractRequest(project, purpose, SPEC, "ab" * 32, tmp_path / "out")


def pseudonymizer() -> Pseudonymizer:
    return Pseudonymizer.for_project(b"\x02" * 32, "p1", workers=1)


def release(register, req, cohort=lambda: ROWS, policy=POLICY):
    return release_extract(register, req, policy, cohort, pseudonymizer)


def test_the_check_names_what_is_missing(register):
    with pytest.raises(Refused) as err:
        register.check_approved("p1", "research", EXTRACT_OUTPUT_TYPES)
    assert err.value.code == "not_approved" and err.value.exit_code == 2
    register.approve("p1", "research", "aggregates", "committee")
    with pytest.raises(Refused) as err:
        register.check_approved("p1", "research", EXTRACT_OUTPUT_TYPES)
    assert err.value.code == "forbidden_output_type"
    with pytest.raises(Refused) as err:
        register.check_approved("p1", "teaching", ("aggregates",))
    assert err.value.code == "forbidden_purpose"
    assert register.check_approved("p1", "research", ("aggregates",)).output_type == "aggregates"


@pytest.mark.parametrize(
    ("purpose", "output_type", "revoked", "code"),
    [
        (None, None, False, "not_approved"),
        ("research", "pseudonymized_extract", True, "not_approved"),
        ("teaching", "pseudonymized_extract", False, "forbidden_purpose"),
        ("research", "aggregates", False, "forbidden_output_type"),
    ],
)
def test_refused_without_an_active_approval_for_purpose_and_extract(
    register, tmp_path, purpose, output_type, revoked, code
):
    if purpose:
        register.approve("p1", purpose, output_type, "committee")
    if revoked:
        register.revoke("p1")
    touched = []

    def cohort():
        touched.append(True)
        return ROWS

    with pytest.raises(Refused) as err:
        release(register, request(tmp_path), cohort)
    assert err.value.code == code
    assert not touched  # the store is never read for a refused request
    assert not (tmp_path / "out").exists()
    assert {p.name for p in tmp_path.iterdir()} <= {"node.db", "node.db-wal", "node.db-shm"}
    [row] = register.extract_log()
    assert set(row) == RECORD_KEYS
    assert row["outcome"] == code and row["project_id"] == "p1" and row["purpose"] == "research"
    assert row["files"] == {} and row["cohort_size"] is None and row["out_dir"] == ""
    assert row["reason"] == str(err.value)
    [served] = [r for r in register.served_log() if r["kind"] == "extract"]
    assert served["outcome"] == code and served["envelope_sha256"] == "ab" * 32


def test_released_with_an_approval_and_recorded_with_the_file_hashes(register, tmp_path):
    decision = SyncedDecision(
        "https://hub.example", "p1", 7, "approve", "approved", "running",
        "research", "pseudonymized_extract", None, "committee", None,
    )  # fmt: skip
    assert register.apply(decision) == 1  # as `passerelle node sync` records it
    req = request(tmp_path)
    released = release(register, req)
    out = tmp_path / "out"
    assert sorted(p.name for p in released.paths) == sorted(p.name for p in out.iterdir())
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]
    [row] = register.extract_log()
    assert set(row) == RECORD_KEYS
    table = pq.read_table(out / "extract.parquet")
    assert row["outcome"] == "released" and row["reason"] == ""
    assert row["request_id"] == req.request_id and row["policy"] == POLICY.label
    assert row["cohort_size"] == 3000 and row["records_released"] == table.num_rows
    assert row["k"] == 11 and 11 <= row["k_reached"] <= table.num_rows
    assert row["out_dir"] == str(out.resolve())
    assert row["files"] == {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()
    }
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["extract_id"] == req.request_id and manifest["purpose"] == "research"
    # the record holds aggregates and hashes only: no pseudonym, id or date of any person
    text = json.dumps(row, default=str)
    assert not any(p in text for p in table.column("pseudonym").to_pylist())
    dates = {str(d) for d in ROWS.column("index_date").to_pylist()}
    assert not any(d in text for d in dates if d != row["at"].date().isoformat())


def test_an_approval_named_extract_releases_too(register, tmp_path):
    register.approve("p1", "research", "extract", "committee", "CSE-2026-3")
    release(register, request(tmp_path))
    assert [r["outcome"] for r in register.extract_log()] == ["released"]


def test_a_revocation_during_the_run_refuses_and_leaves_nothing(register, tmp_path):
    register.approve("p1", "research", "pseudonymized_extract", "committee")

    def cohort_then_revoked():
        register.revoke("p1")  # the committee withdraws while the extract is being made
        return ROWS

    with pytest.raises(Refused) as err:
        release(register, request(tmp_path), cohort_then_revoked)
    assert err.value.code == "not_approved"
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]
    [row] = register.extract_log()  # the release was rolled back; the refusal recorded
    assert row["outcome"] == "not_approved" and row["cohort_size"] == 3000
    assert row["files"] == {}


def test_a_target_that_cannot_be_met_is_a_recorded_refusal(register, tmp_path):
    register.approve("p1", "research", "pseudonymized_extract", "committee")
    with pytest.raises(ExtractRefused, match="fewer than k=11"):
        release(register, request(tmp_path), lambda: ROWS.slice(0, 8))
    assert not (tmp_path / "out").exists()
    [row] = register.extract_log()
    assert row["outcome"] == "target_not_met" and row["cohort_size"] == 8
    assert "fewer than k=11" in row["reason"]


def test_a_policy_without_extracts_or_the_purpose_is_a_recorded_refusal(register, tmp_path):
    register.approve("p1", "market_access", "pseudonymized_extract", "committee")
    with pytest.raises(PolicyRefusal, match="purpose 'market_access'"):
        release(register, request(tmp_path, purpose="market_access"))
    assert [r["outcome"] for r in register.extract_log()] == ["policy_refused"]
    assert not (tmp_path / "out").exists()


def test_an_out_folder_with_files_is_never_overwritten(register, tmp_path):
    register.approve("p1", "research", "pseudonymized_extract", "committee")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "other.csv").write_text("x\n")
    with pytest.raises(UserError, match="not an empty folder"):
        release(register, request(tmp_path))
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["other.csv"]
    assert register.extract_log() == []  # a usage error, not a refusal: nothing to record
    (tmp_path / "out" / "other.csv").unlink()  # an empty folder is fine
    release(register, request(tmp_path))
    assert (tmp_path / "out" / "extract.parquet").exists()


def test_records_survive_a_restart_in_order(tmp_path):
    reg = NodeRegister(tmp_path / "node.db")
    with pytest.raises(Refused):
        release(reg, request(tmp_path))
    reg.approve("p1", "research", "pseudonymized_extract", "committee")
    release(reg, request(tmp_path))
    reg.close()
    again = NodeRegister(tmp_path / "node.db")
    log = again.extract_log()
    assert [r["outcome"] for r in log] == ["not_approved", "released"]
    assert log[0]["at"] <= log[1]["at"] and log[1]["at"].tzinfo is not None
    again.close()


def test_served_log_keeps_envelopes_and_extracts_apart(register, tmp_path):
    register.log("study", "p1", "r1", "cd" * 32, "released")
    register.approve("p1", "research", "pseudonymized_extract", "committee")
    release(register, request(tmp_path))
    assert [r["kind"] for r in register.served_log()] == ["study", "extract"]
    assert len(register.extract_log()) == 1


def test_approval_expired_before_the_extract_is_refused(register, tmp_path):
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    register.approve(
        "p1", "research", "pseudonymized_extract", "committee", expires_at=past,
        now=past - dt.timedelta(days=30),
    )  # fmt: skip
    with pytest.raises(Refused, match="not approved"):
        release(register, request(tmp_path))
