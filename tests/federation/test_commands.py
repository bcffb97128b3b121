"""`passerelle keys generate`, `passerelle node approve` and `passerelle serve --role all`,
run as real processes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import httpx

from tests.federation.cluster import launch, load, wait_ready

SPEC = {
    "study": "gi-bleed",
    "cohort": {
        "entry": {"condition": {"concepts": [192671], "descendants": True}, "occurrence": "all"}
    },
    "analyses": [{"name": "persons", "count": "persons", "by": ["sex"]}],
}


def cli(*args, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "passerelle", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=120,
    )


def test_keys_generate_writes_a_private_key_only_its_owner_can_read(tmp_path):
    out = cli("keys", "generate", "--out", str(tmp_path / "keys"), "--name", "chu-a")
    assert out.returncode == 0, out.stderr
    private = tmp_path / "keys" / "chu-a.key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    secret = private.read_text()
    body = "".join(secret.splitlines()[1:-1])
    assert body not in out.stdout + out.stderr and "PRIVATE" not in out.stdout
    assert "key id:" in out.stdout and "trust entry:" in out.stdout
    again = cli("keys", "generate", "--out", str(tmp_path / "keys"), "--name", "chu-a")
    assert (
        again.returncode != 0
        and "already exists" in again.stderr
        and "Traceback" not in again.stderr
    )


def test_serve_role_all_runs_hub_and_local_node_in_one_process(tmp_path, gibleed_dir):
    store = f"duckdb:///{tmp_path / 'cdm.duckdb'}"
    load(store, gibleed_dir)
    env = {"PASSERELLE_DATA_DIR": str(tmp_path / "data"), "PASSERELLE_STORE": store}
    approve = cli(
        "node", "approve", "--project", "p1", "--purpose", "research", "--by", "committee", env=env
    )
    assert approve.returncode == 0, approve.stderr
    proc = wait_ready(launch("all", "all", None, tmp_path, env=env), "/hub/v1/health")
    try:
        body = {"study": SPEC, "project_id": "p1", "purpose": "research"}
        out = httpx.post(proc.url + "/hub/v1/studies", json=body, timeout=120).json()
        assert not out["partial"] and out["merged"]["sites"] == ["local"]
        assert sorted(out["merged"]["tables"][0]["rows"]) == [
            [8507, 235],
            [8532, 240],
        ]  # rounded to 5
        refused = httpx.post(
            proc.url + "/hub/v1/studies", json={**body, "project_id": "p2"}, timeout=120
        ).json()
        assert refused["partial"] and refused["missing"][0]["reason"].startswith("not_approved")
        assert stat.S_IMODE((tmp_path / "data" / "keys" / "hub.key").stat().st_mode) == 0o600
        # the single window's REST API is served by the same process
        assert httpx.get(proc.url + "/api/v1/openapi.json", timeout=60).status_code == 200
    finally:
        proc.stop()
