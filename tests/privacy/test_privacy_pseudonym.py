"""Pseudonyms: keyed per project, unlinkable across projects, consistent date shifts."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import stat

import pyarrow as pa
import pytest

from passerelle.errors import ConfigError
from passerelle.privacy import pseudonym as P


@pytest.fixture
def master(tmp_path):
    path = P.create_master_key(tmp_path / "keys" / "master.key")
    return P.load_master_key(path)


def test_master_key_file_is_0600_and_never_overwritten(tmp_path):
    path = P.create_master_key(tmp_path / "k")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(ConfigError, match="never overwritten"):
        P.create_master_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600") as err:
        P.load_master_key(path)
    assert path.read_bytes().hex() not in str(err.value)


def test_load_creates_when_asked(tmp_path):
    key = P.load_master_key(tmp_path / "new.key", create=True)
    assert len(key) == 32
    with pytest.raises(ConfigError):
        P.load_master_key(tmp_path / "absent.key")


def test_pseudonym_is_hmac_sha256_with_hkdf_project_key(master):
    key = P.project_key(master, "p1")
    expected = hmac.new(key, b"person:42", hashlib.sha256).digest()[:16].hex()
    assert P.Pseudonymizer(key).pseudonyms([42]).to_pylist() == [expected]


def test_same_person_same_in_project_different_across_projects(master):
    a = P.Pseudonymizer.for_project(master, "project-a")
    b = P.Pseudonymizer.for_project(master, "project-b")
    ids = [1, 2, 3, 1, 2]
    pa_, pb_ = a.pseudonyms(ids).to_pylist(), b.pseudonyms(ids).to_pylist()
    assert pa_[0] == pa_[3] and pa_[1] == pa_[4]
    assert len(set(pa_)) == 3
    assert not set(pa_) & set(pb_)
    assert P.Pseudonymizer.for_project(master, "project-a").pseudonyms(ids).to_pylist() == pa_
    assert "key" not in repr(a).lower().replace("max_shift_days", "")


def test_date_shifts_bounded_nonzero_and_keep_intervals(master):
    ps = P.Pseudonymizer.for_project(master, "p", max_shift_days=30)
    ids = list(range(2000))
    shifts = ps.date_shifts(ids).to_pylist()
    assert all(-30 <= s <= 30 and s != 0 for s in shifts)
    assert len(set(shifts)) == 60
    table = pa.table(
        {
            "person_id": [7, 7, 8],
            "start": pa.array([dt.date(2020, 1, 1), dt.date(2020, 3, 1), dt.date(2021, 1, 1)]),
            "at": pa.array([dt.datetime(2020, 1, 1, 12), dt.datetime(2020, 1, 2), None]),
            "condition_source_value": ["free text", "x", "y"],
            "value": [1, 2, 3],
        }
    )
    out = ps.apply(table)
    assert out.column_names == ["pseudonym", "start", "at", "value"]
    start = out.column("start").to_pylist()
    assert (start[1] - start[0]).days == 60  # interval kept within a person
    assert start[0] != dt.date(2020, 1, 1)
    assert out.column("at").to_pylist()[2] is None
    at = out.column("at")[0].as_py()
    assert at - dt.datetime.combine(start[0], dt.time()) == dt.timedelta(hours=12)


def test_parallel_path_matches_serial(master, monkeypatch):
    ps = P.Pseudonymizer.for_project(master, "p")
    ids = list(range(5000))
    serial = ps.map(ids)
    monkeypatch.setattr(P, "PARALLEL_THRESHOLD", 1000)
    ps.workers = 2
    parallel = ps.map(ids)
    assert serial[0].equals(parallel[0]) and serial[1].equals(parallel[1])


def test_string_ids(master):
    ps = P.Pseudonymizer.for_project(master, "p")
    out = ps.pseudonyms(pa.array(["a", "b", "a"])).to_pylist()
    assert out[0] == out[2] != out[1]


def test_pseudonyms_and_shifts_are_pinned():
    """Known outputs: a faster implementation must give the same bytes, or every extract
    already released would stop matching the next one of the same project."""
    ps = P.Pseudonymizer.for_project(bytes(range(32)), "pin-project", max_shift_days=180)
    names, shifts = ps.map([0, 1, 42, 123456789012, -7])
    assert names.to_pylist() == [
        "1dbd35eeb593ac7c85ab726b19ba764a",
        "6bc70f16bc85ce945f5e10690a6d0373",
        "1572bfac37ebf2a209e3fca658f52136",
        "05a21a2cd6146ba8674c9349cc37dbef",
        "c94f1dcaa1755afed481fc69720a30b7",
    ]
    assert shifts.to_pylist() == [116, -172, 121, 108, 166]
    names, shifts = ps.map(pa.array(["a", "é-1"]))
    assert names.to_pylist() == [
        "f7c3a54a9c8fa2393a48f8f49b01703f",
        "81c3fb5e87bcce7a85126929e518d95d",
    ]
    assert shifts.to_pylist() == [-22, 116]
