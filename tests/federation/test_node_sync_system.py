"""The committee's decision reaches the node by sync, with real processes on 127.0.0.1: a hub
serving the single window (`web = true`) and a node pulling its decisions every second.

A reviewer approves over the REST API → the node syncs → the study runs; the project is closed
→ the node refuses it; a rejection is applied as a revocation; a node API key of another
organisation applies nothing."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from passerelle.access.accounts import Accounts
from passerelle.access.context import Context
from passerelle.access.db import Database
from passerelle.access.enums import Role
from passerelle.access.requests import Requests
from passerelle.access.schemas import ApiKeyIn, RequestIn
from passerelle.catalog.schemas import DatasetIn
from passerelle.catalog.service import Catalog
from passerelle.config import Settings
from passerelle.federation.keys import KeyPair
from passerelle.federation.register import NodeRegister
from tests.federation.cluster import (
    NodeSpec,
    free_port,
    launch,
    load,
    wait_ready,
    write_hub,
    write_node,
)
from tests.fixtures.appdb import seed, token_for

STUDY = {
    "study": "gi-bleed",
    "cohort": {"entry": {"condition": {"concepts": [192671], "descendants": True}}},
    "analyses": [{"name": "persons", "count": "persons"}],
}
POLICY = "policy: a\nmin_cell: 11\nrounding: 1\n"


def _wait(predicate, seconds: float = 120.0):
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def _node_sync(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "passerelle", "node", "sync", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def platform(gibleed_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("node-sync")
    db_url = f"sqlite:///{work / 'hub.db'}"
    settings = Settings(data_dir=work / "hub-data", app_db_url=db_url)
    db = Database.from_settings(settings)
    db.upgrade()
    ctx = Context(db, settings)
    seeded = seed(ctx)
    body = DatasetIn(title="GiBleed", description="D", domains=["person"], contact_email="a@b.fr")
    dataset = Catalog(ctx).create(seeded.p("hopa", Role.STEWARD), body).id
    keys = {
        o: Accounts(ctx).create_api_key(None, seeded.orgs[o], ApiKeyIn(name="node")).key
        for o in ("hopa", "hopb")
    }
    (work / "keys").mkdir()
    for org, key in keys.items():
        (work / "keys" / f"{org}.api-key").write_text(key)

    store = f"duckdb:///{work / 'a.duckdb'}"
    load(store, gibleed_dir)
    hub_key = KeyPair.generate("hub")
    hub_key.write(work / "keys")
    hub_port, node_port = free_port(), free_port()
    hub_url = f"http://127.0.0.1:{hub_port}"
    node_config, node_key = write_node(work, NodeSpec("chu-a", store, POLICY), hub_key)
    text = node_config.read_text()
    sync = f'\n[sync]\nhub_api = "{hub_url}"\norganisation = "Org hopa"\ninterval_seconds = 1\n'
    node_config.write_text(text + sync + 'api_key_file = "keys/hopa.api-key"\n')
    wrong = work / "wrong.toml"  # another organisation's key on this node
    wrong.write_text(
        text.replace("chu-a-node.db", "wrong-node.db")
        + sync
        + 'api_key_file = "keys/hopb.api-key"\n'
    )
    hub_config = write_hub(
        work, hub_key, {"chu-a": (f"http://127.0.0.1:{node_port}", node_key)}, timeout=60
    )
    hub_config.write_text(hub_config.read_text().replace("[hub]\n", "[hub]\nweb = true\n", 1))
    env = {"PASSERELLE_APP_DB_URL": db_url, "PASSERELLE_DATA_DIR": str(work / "hub-data")}
    hub = launch("hub", "hub", hub_config, work, hub_port, env=env)
    node = launch("chu-a", "node", node_config, work, node_port)
    try:
        wait_ready(hub, "/api/v1/audit/head")
        wait_ready(node, "/node/v1/health")
        yield {
            "work": work,
            "ctx": ctx,
            "seeded": seeded,
            "dataset": dataset,
            "hub": hub,
            "node": node,
            "node_config": node_config,
            "wrong": wrong,
        }
    finally:
        node.stop()
        hub.stop()
        db.dispose()


def _submit(p) -> tuple[int, int]:
    svc = Requests(p["ctx"])
    applicant = p["seeded"].p("bio", Role.APPLICANT)
    req_in = RequestIn(
        title="GI bleeding",
        purpose=["research"],
        gdpr_art6="6.1.e",
        gdpr_art9="9.2.j",
        dataset_ids=[p["dataset"]],
    )
    req = svc.submit(applicant, svc.create(applicant, req_in).id)
    return req.id, req.reviews[0].id


def _auth(p, org: str, role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(p['ctx'], p['seeded'].users[(org, role)])}"}


def _study(p, request_id: int) -> dict:
    body = {
        "study": STUDY,
        "project_id": f"request-{request_id}",
        "purpose": "research",
        "request_id": str(request_id),
        "sites": ["chu-a"],
    }
    r = httpx.post(p["hub"].url + "/hub/v1/studies", json=body, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()["sites"][0]


def _refused(site: dict) -> bool:
    return site["status"] == "refused" and "not_approved" in str(site)


def test_approval_by_the_reviewer_reaches_the_node_then_closing_revokes_it(platform):
    p = platform
    request_id, review_id = _submit(p)
    assert _refused(_study(p, request_id))  # not approved yet

    r = httpx.post(
        f"{p['hub'].url}/api/v1/reviews/{review_id}/decision",
        json={"status": "approved_with_conditions", "conditions": "aggregates only"},
        headers=_auth(p, "hopa", Role.REVIEWER),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    site = _wait(lambda: (s := _study(p, request_id))["status"] == "ok" and s)
    assert site and site["status"] == "ok", site  # the node's periodic sync approved it

    out = _node_sync(p["node_config"])  # the CLI: already applied, nothing changes
    assert out.returncode == 0, out.stderr
    assert "0 approval(s) recorded" in out.stdout and "1 already applied" in out.stdout

    r = httpx.post(
        f"{p['hub'].url}/api/v1/requests/{request_id}/close",
        headers=_auth(p, "bio", Role.APPLICANT),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert _wait(lambda: _refused(_study(p, request_id)))  # revoked by the next sync

    reg = NodeRegister(p["work"] / "chu-a-node.db")
    log = [(e["review_id"], e["action"]) for e in reg.sync_log()]
    reg.close()
    assert log[-2:] == [(review_id, "approve"), (review_id, "revoke")]


def test_a_rejection_is_applied_and_the_node_refuses(platform):
    p = platform
    request_id, review_id = _submit(p)
    r = httpx.post(
        f"{p['hub'].url}/api/v1/reviews/{review_id}/decision",
        json={"status": "rejected", "comment": "no legal basis"},
        headers=_auth(p, "hopa", Role.REVIEWER),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    out = _node_sync(p["node_config"])
    assert out.returncode == 0, out.stderr

    def rejected_in_log() -> bool:
        reg = NodeRegister(p["work"] / "chu-a-node.db")
        try:
            return (review_id, "revoke") in [(e["review_id"], e["action"]) for e in reg.sync_log()]
        finally:
            reg.close()

    assert _wait(rejected_in_log)
    assert _refused(_study(p, request_id))


def test_another_organisations_key_cannot_read_or_apply_decisions(platform):
    p = platform
    out = _node_sync(p["wrong"])
    assert out.returncode == 1
    assert "belongs to 'Org hopb'" in out.stdout + out.stderr
    reg = NodeRegister(p["work"] / "wrong-node.db")
    assert reg.all_approvals() == [] and reg.sync_log() == []
    reg.close()
    bio_user = _auth(p, "bio", Role.ADMIN)  # a user, not a node key: no access to the feed
    r = httpx.get(f"{p['hub'].url}/api/v1/nodes/me/decisions", headers=bio_user, timeout=60)
    assert r.status_code == 403
