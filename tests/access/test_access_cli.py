"""The CLI groups are thin adapters: org, user, request, audit (verify names the broken entry)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import update

from passerelle.access.db import Database
from passerelle.access.models import AuditEntry


def run(tmp_path, *args, ok=True):
    env = {**os.environ, "PASSERELLE_DATA_DIR": str(tmp_path), "PASSERELLE_APP_DB_URL": ""}
    env.pop("PASSERELLE_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "passerelle", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
    return proc


@pytest.mark.slow  # a dozen CLI processes
def test_cli_journey_and_audit_verify(tmp_path):
    run(tmp_path, "org", "create", "CHU A", "--type", "hospital", "--review-days", "30")
    run(tmp_path, "org", "create", "Biotech", "--type", "biotech")
    run(tmp_path, "user", "create", "1", "rev@a.fr", "--name", "R", "--role", "reviewer")
    run(tmp_path, "user", "create", "2", "app@b.fr", "--name", "P", "--role", "applicant")
    ds = tmp_path / "ds.json"
    ds.write_text(
        json.dumps(
            {
                "title": "Stays",
                "description": "D",
                "domains": ["person"],
                "contact_email": "dpo@a.fr",
            }
        )
    )
    run(tmp_path, "catalog", "add", str(ds), "--org-id", "1")
    req = tmp_path / "req.json"
    req.write_text(
        json.dumps(
            {
                "title": "R",
                "purpose": ["teaching"],
                "gdpr_art6": "6.1.e",
                "gdpr_art9": "9.2.j",
                "dataset_ids": [1],
            }
        )
    )
    run(tmp_path, "request", "create", str(req), "--org-id", "2", "--user-id", "2")
    out = run(tmp_path, "request", "submit", "1").stdout
    assert "review 1: CHU A due" in out
    run(tmp_path, "request", "decide", "1", "approved")
    shown = json.loads(run(tmp_path, "request", "show", "1").stdout)
    assert shown["status"] == "active" and shown["reviews"][0]["review_days"] == 30
    assert "verified" in run(tmp_path, "audit", "verify").stdout
    bad = run(tmp_path, "request", "decide", "1", "rejected", ok=False)
    assert "cannot move from approved to rejected" in bad.stderr

    db = Database(f"sqlite:///{tmp_path / 'passerelle.db'}")
    with db.write() as s:
        s.execute(update(AuditEntry).where(AuditEntry.seq == 4).values(action="forged"))
    db.dispose()
    broken = run(tmp_path, "audit", "verify", ok=False)
    assert "broken at entry 4" in broken.stdout
