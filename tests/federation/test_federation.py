"""Fixtures for the federation tests: GiBleed split by person into three stores on different
engines (DuckDB, PostgreSQL, DuckDB) plus a fourth node to kill, and the union in one store."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import uuid

import httpx
import pytest

from passerelle.federation.envelope import canonical
from tests.conftest import postgres_admin_url
from tests.federation.cluster import NodeSpec, load, split_by_person, start_cluster

POLICY = "policy: {name}\nmin_cell: {min_cell}\nrounding: {rounding}\n"
PROJECT = "p-gi-bleed"


@pytest.fixture(scope="session")
def gibleed_parts(gibleed_dir, tmp_path_factory):
    return split_by_person(gibleed_dir, tmp_path_factory.mktemp("gibleed-split"), 3)


@pytest.fixture(scope="session")
def session_postgres_url():
    base = postgres_admin_url()
    schema = f"fed_{uuid.uuid4().hex[:10]}"
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}schema={schema}"
    import psycopg

    from passerelle.cdm.url import parse_store_url

    with psycopg.connect(parse_store_url(base).postgres_conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="session")
def union_store(gibleed_dir, tmp_path_factory):
    url = f"duckdb:///{tmp_path_factory.mktemp('union') / 'cdm.duckdb'}"
    load(url, gibleed_dir)
    return url


@pytest.fixture(scope="session")
def cluster(gibleed_parts, session_postgres_url, tmp_path_factory):
    work = tmp_path_factory.mktemp("federation")
    stores = {
        "chu-a": f"duckdb:///{work / 'a.duckdb'}",
        "chu-b": session_postgres_url,
        "chu-c": f"duckdb:///{work / 'c.duckdb'}",
        "chu-d": f"duckdb:///{work / 'd.duckdb'}",
    }
    folders = {
        "chu-a": gibleed_parts[0],
        "chu-b": gibleed_parts[1],
        "chu-c": gibleed_parts[2],
        "chu-d": gibleed_parts[0],
    }
    for name, url in stores.items():
        load(url, folders[name])
    approvals = [(PROJECT, "research", "aggregates")]
    specs = [
        NodeSpec(
            "chu-a", stores["chu-a"], POLICY.format(name="a", min_cell=11, rounding=1), approvals
        ),
        NodeSpec(
            "chu-b", stores["chu-b"], POLICY.format(name="b", min_cell=5, rounding=1), approvals
        ),
        NodeSpec(
            "chu-c", stores["chu-c"], POLICY.format(name="c", min_cell=11, rounding=1), approvals
        ),
        NodeSpec(
            "chu-d", stores["chu-d"], POLICY.format(name="d", min_cell=11, rounding=5), approvals
        ),
    ]
    c = start_cluster(work, specs, timeout=20.0)
    yield c
    c.stop()


# -- the federation at work ---------------------------------------------------------------------
SPEC = {
    "study": "gi-bleed",
    "cohort": {
        "entry": {"condition": {"concepts": [192671], "descendants": True}, "occurrence": "all"}
    },
    "analyses": [
        {"name": "entries", "count": "entries"},
        {"name": "persons", "count": "persons", "by": ["sex"]},
        {"name": "by_age", "count": "persons", "by": [{"age_band": 10}]},
    ],
}
MAIN = ["chu-a", "chu-b", "chu-c"]


def hub_post(cluster, path, body, timeout=60.0):
    r = httpx.post(cluster.hub.url + path, json=body, timeout=timeout)
    assert r.status_code == 200, r.text
    return r.json()


def run(cluster, **overrides):
    body = {
        "study": SPEC,
        "project_id": PROJECT,
        "purpose": "research",
        "request_id": "r1",
        "sites": MAIN,
    }
    return hub_post(cluster, "/hub/v1/studies", {**body, **overrides})


def test_merged_counts_equal_the_union_for_released_cells(cluster, union_store):
    out = run(cluster)
    assert not out["partial"], out["missing"]
    assert [s["site"] for s in out["sites"]] == MAIN and all(
        s["status"] == "ok" for s in out["sites"]
    )
    engines = {
        n: httpx.get(cluster.nodes[n].url + "/node/v1/health").json()["engine"] for n in MAIN
    }
    assert engines == {"chu-a": "duckdb", "chu-b": "postgres", "chu-c": "duckdb"}
    assert compare_with_union(out, union_truth(union_store, SPEC)) >= 4
    # the published Eunomia figures, summed over three hospitals
    persons = next(t for t in out["merged"]["tables"] if t["name"] == "persons")
    assert sorted(persons["rows"]) == [[8507, 237], [8532, 242]]
    entries = next(t for t in out["merged"]["tables"] if t["name"] == "entries")
    assert entries["rows"] == [[479]]


def compare_with_union(out, truth):
    """Every merged count cell: equal to the union's when all sites released it, else a bound
    holding the union's value. Returns how many cells were compared exactly."""
    compared = 0
    for table in out["merged"]["tables"]:
        annotated = {(c["row"], c["column"]): c for c in table["cells"]}
        kinds = [c["kind"] for c in table["columns"]]
        names = [c["name"] for c in table["columns"]]
        for r, row in enumerate(table["rows"]):
            key = tuple(v for v, k in zip(row, kinds, strict=True) if k == "dimension")
            for j, (name, kind) in enumerate(zip(names, kinds, strict=True)):
                if kind != "count":
                    continue
                expected = truth[table["name"]].get(key, {}).get(name, 0)
                cell = annotated.get((r, name))
                if cell is None:
                    assert row[j] == expected, (table["name"], key, name)
                    compared += 1
                else:
                    assert row[j] is None and cell["at_least"] <= expected
                    assert cell["at_most"] is None or expected <= cell["at_most"]
    return compared


CELECOXIB = {
    "study": "celecoxib-new-users",
    "cohort": {
        "entry": {"drug": {"concepts": [1118084], "descendants": True}, "occurrence": "first"},
        "observation": {"prior_days": 365},
        "demographics": {"age": {"min": 18}},
        "criteria": [
            {
                "exclude": {
                    "condition": {"concepts": [192671], "descendants": True},
                    "window": {"start": None, "end": -1},
                }
            }
        ],
    },
    "analyses": [
        {"name": "size", "count": "persons"},
        {"name": "by_sex_age", "count": "persons", "by": ["sex", {"age_band": 10}]},
        {
            "name": "gi_bleed_1y",
            "outcome": {
                "condition": {"concepts": [192671], "descendants": True},
                "window": {"start": 1, "end": 365},
            },
            "by": ["sex"],
        },
    ],
}


def test_the_second_acceptance_study_merges_to_the_union(cluster, union_store):
    out = run(cluster, study=CELECOXIB, request_id="r-celecoxib")
    assert not out["partial"], out["missing"]
    assert compare_with_union(out, union_truth(union_store, CELECOXIB)) >= 5
    outcome = next(t for t in out["merged"]["tables"] if t["name"] == "gi_bleed_1y")
    assert any(c.get("derived") for c in outcome["cells"])


def union_truth(store_url, spec):
    """The same study on one store holding everyone, with no disclosure control."""
    from passerelle.cdm.stores import open_store
    from passerelle.federation.study import study_language

    lang = study_language()
    with open_store(store_url) as store:
        result = lang.run(store, lang.parse(spec))
    truth = {}
    for t in result.tables:
        dims = [i for i, c in enumerate(t.columns) if c.kind == "dimension"]
        truth[t.name] = {
            tuple(r[i] for i in dims): {
                c.name: r[i] for i, c in enumerate(t.columns) if c.kind == "count"
            }
            for r in t.rows
        }
    return truth


# -- refusals: each check of the node, over real HTTP -------------------------------------------
def signed_for(cluster, node="chu-a", *, tamper=None, now=None, ttl=300, key=None, **fields):
    from passerelle.federation.envelope import new_envelope, sign_envelope

    base = {
        "project_id": PROJECT,
        "purpose": "research",
        "request_id": "r-direct",
        "output_type": "aggregates",
    }
    env = new_envelope(
        key or cluster.hub_key,
        kind="study",
        node=node,
        study=SPEC,
        now=now,
        ttl_seconds=ttl,
        **{**base, **fields},
    )
    signed = sign_envelope(key or cluster.hub_key, env)
    if tamper:
        signed["envelope"] = {**signed["envelope"], **tamper}
    return signed


def node_post(cluster, signed, node="chu-a", path="/node/v1/studies"):
    return httpx.post(cluster.nodes[node].url + path, content=canonical(signed), timeout=60)


def refusal(resp):
    body = resp.json()
    assert set(body) == {"error", "reason", "node"} and 400 <= resp.status_code < 500, body
    return resp.status_code, body["error"]


def test_a_valid_envelope_is_answered_with_a_signed_protected_result(cluster):
    from passerelle.federation.envelope import envelope_hash, verify_result
    from passerelle.federation.keys import TrustList

    signed = signed_for(cluster)
    resp = node_post(cluster, signed)
    assert resp.status_code == 200, resp.text
    payload = verify_result(
        resp.json(),
        TrustList([cluster.node_keys["chu-a"].public]),
        envelope_hash(signed["envelope"]),
    )
    assert payload["node"] == "chu-a" and payload["result"]["policy"].startswith("a@")
    assert payload["disclosure"]["min_cell"] == 11


def test_a_tampered_envelope_is_refused(cluster):
    for change in (
        {"project_id": "p-other"},
        {"purpose": "teaching"},
        {"study": {**SPEC, "study": "x"}},
    ):
        assert refusal(node_post(cluster, signed_for(cluster, tamper=change))) == (
            401,
            "bad_signature",
        )


def test_an_envelope_from_an_untrusted_hub_is_refused(cluster):
    from passerelle.federation.keys import KeyPair

    assert refusal(node_post(cluster, signed_for(cluster, key=KeyPair.generate("mallory")))) == (
        401,
        "bad_signature",
    )


def test_a_replayed_nonce_is_refused(cluster):
    signed = signed_for(cluster)
    assert node_post(cluster, signed).status_code == 200
    assert refusal(node_post(cluster, signed)) == (409, "replayed")


def test_a_nonce_survives_a_node_restart(cluster):
    from tests.federation.cluster import start

    signed = signed_for(cluster, node="chu-c")
    assert node_post(cluster, signed, node="chu-c").status_code == 200
    old = cluster.nodes["chu-c"]
    old.stop()
    cluster.nodes["chu-c"] = start(
        "chu-c",
        "node",
        cluster.node_configs["chu-c"],
        cluster.workdir,
        "/node/v1/health",
        port=old.port,
    )
    assert refusal(node_post(cluster, signed, node="chu-c")) == (409, "replayed")


def test_an_expired_envelope_is_refused(cluster):
    import datetime as dt

    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    assert refusal(node_post(cluster, signed_for(cluster, now=past, ttl=300))) == (401, "expired")
    future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    assert refusal(node_post(cluster, signed_for(cluster, now=future))) == (401, "not_yet_valid")
    assert refusal(node_post(cluster, signed_for(cluster, ttl=10 * 24 * 3600))) == (
        401,
        "lifetime_too_long",
    )


def test_an_unapproved_project_is_refused(cluster):
    assert refusal(node_post(cluster, signed_for(cluster, project_id="p-unknown"))) == (
        403,
        "not_approved",
    )


def test_a_forbidden_purpose_is_refused(cluster):
    # allowed by the node's policy but not approved for this project by its reviewers
    assert refusal(node_post(cluster, signed_for(cluster, purpose="teaching"))) == (
        403,
        "forbidden_purpose",
    )
    # not allowed by the node's policy at all
    assert refusal(node_post(cluster, signed_for(cluster, purpose="market_access"))) == (
        403,
        "forbidden_purpose",
    )


def test_patient_level_output_is_never_released_through_federation(cluster):
    got = refusal(node_post(cluster, signed_for(cluster, output_type="pseudonymized_extract")))
    assert got == (403, "forbidden_output_type")


def test_an_envelope_for_another_node_is_refused(cluster):
    assert refusal(node_post(cluster, signed_for(cluster, node="chu-b"), node="chu-a")) == (
        403,
        "wrong_node",
    )


def test_an_invalid_study_is_refused_with_its_field_paths(cluster):
    bad = {**SPEC, "cohort": {"entry": {"condition": {"concepts": "x"}}}}
    from passerelle.federation.envelope import new_envelope, sign_envelope

    env = new_envelope(
        cluster.hub_key,
        kind="study",
        node="chu-a",
        study=bad,
        project_id=PROJECT,
        purpose="research",
    )
    status, code = refusal(node_post(cluster, sign_envelope(cluster.hub_key, env)))
    assert (status, code) == (422, "invalid_study")


def test_refusals_are_named_by_the_hub_and_flag_the_answer_partial(cluster):
    out = run(cluster, project_id="p-unknown")
    assert out["partial"] and {m["site"] for m in out["missing"]} == set(MAIN)
    assert all(
        m["status"] == "refused" and m["reason"].startswith("not_approved") for m in out["missing"]
    )
    assert out["merged"]["tables"] == []


def test_feasibility_needs_no_approval_and_states_its_noise(cluster):
    body = {"study": SPEC, "applicant": "someone-without-approval", "sites": MAIN}
    out = hub_post(cluster, "/hub/v1/feasibility", body)
    assert not out["partial"], out["missing"]
    [table] = out["merged"]["tables"]
    assert table["name"] == "feasibility" and len(table["rows"]) == 1
    assert out["dp"]["combined_per_cell_sd"] > 0
    assert all(s["dp"]["epsilon"] > 0 for s in out["sites"])
    again = hub_post(cluster, "/hub/v1/feasibility", body)
    assert [s["result"] for s in again["sites"]] == [
        s["result"] for s in out["sites"]
    ]  # no averaging


# -- a tampered result, a slow node, a dead node -------------------------------------------------
def in_process_hub(cluster, nodes, timeout=20.0, retries=2):
    from passerelle.federation.config import HubConfig, NodeEntry
    from passerelle.federation.hub import HubService

    entries = [NodeEntry(name, url, cluster.node_keys[name].public) for name, url in nodes.items()]
    return HubService(
        HubConfig(
            "hub",
            cluster.hub_key,
            entries,
            timeout_seconds=timeout,
            connect_timeout_seconds=1,
            retries=retries,
        )
    )


def run_in_process(hub, **kw):
    import asyncio

    async def go():
        try:
            return await hub.run_study(SPEC, project_id=PROJECT, purpose="research", **kw)
        finally:
            await hub.aclose()

    return asyncio.run(go())


def test_a_tampered_result_is_rejected_by_the_hub(cluster):
    with tampering_proxy(cluster.nodes["chu-a"].url) as url:
        out = run_in_process(
            in_process_hub(cluster, {"chu-a": url, "chu-b": cluster.nodes["chu-b"].url})
        )
    status = {s["site"]: s for s in out["sites"]}
    assert status["chu-a"]["status"] == "invalid" and "does not verify" in status["chu-a"]["reason"]
    assert (
        status["chu-b"]["status"] == "ok" and out["partial"] and out["merged"]["sites"] == ["chu-b"]
    )


def test_a_node_that_is_down_is_named_after_bounded_retries(cluster):
    from tests.federation.cluster import free_port

    out = run_in_process(
        in_process_hub(
            cluster,
            {"chu-a": cluster.nodes["chu-a"].url, "chu-b": f"http://127.0.0.1:{free_port()}"},
            retries=2,
        )
    )
    down = next(s for s in out["sites"] if s["site"] == "chu-b")
    assert down["status"] == "unreachable" and down["attempts"] == 3 and out["partial"]


def test_a_slow_node_times_out_and_is_named(cluster):
    victim = cluster.nodes["chu-d"]
    victim.proc.send_signal(signal.SIGSTOP)
    try:
        out = run_in_process(
            in_process_hub(
                cluster, {"chu-a": cluster.nodes["chu-a"].url, "chu-d": victim.url}, timeout=3.0
            )
        )
    finally:
        victim.proc.send_signal(signal.SIGCONT)
    slow = next(s for s in out["sites"] if s["site"] == "chu-d")
    assert slow["status"] == "timeout" and out["partial"] and out["merged"]["sites"] == ["chu-a"]


def test_a_node_killed_during_a_study(cluster):
    """The hub (its own process, timeout 20 s) answers, partial, naming the killed site."""
    victim = cluster.nodes["chu-d"]
    victim.proc.send_signal(signal.SIGSTOP)  # the study is in flight and cannot finish
    box = {}
    thread = threading.Thread(target=lambda: box.update(out=run(cluster, sites=["chu-a", "chu-d"])))
    thread.start()
    time.sleep(1.0)
    victim.proc.kill()
    victim.proc.wait(10)
    thread.join(60)
    assert not thread.is_alive()
    out = box["out"]
    dead = next(s for s in out["sites"] if s["site"] == "chu-d")
    assert (
        out["partial"]
        and dead["status"] in ("unreachable", "timeout")
        and out["missing"][0]["site"] == "chu-d"
    )
    assert out["merged"]["sites"] == ["chu-a"]


@contextlib.contextmanager
def tampering_proxy(target):
    """A real HTTP server between hub and node that changes one count in the node's answer."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["content-length"]))
            resp = httpx.post(
                target + self.path,
                content=body,
                headers={"content-type": "application/json"},
                timeout=60,
            )
            data = resp.json()
            for t in data["payload"]["result"]["tables"]:
                for row in t["rows"]:
                    row[-1] = (row[-1] or 0) + 1
            out = canonical(data)
            self.send_response(resp.status_code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_dp_mode_states_the_combined_noise(cluster):
    out = run(cluster, mode="dp", request_id="r-dp")
    assert not out["partial"], out["missing"]
    assert all(s["dp"]["mechanism"] and s["dp"]["per_cell_sd"] > 0 for s in out["sites"])
    persons = next(t for t in out["merged"]["tables"] if t["name"] == "persons")
    noisy = [c for c in persons["cells"] if c.get("noisy")]
    assert len(noisy) == 2 and all(c["sd"] > 0 for c in noisy)
    assert out["dp"]["combined_per_cell_sd"] > 0
    again = run(cluster, mode="dp", request_id="r-dp2")  # same study: the same noisy answer
    assert [s["result"] for s in again["sites"]] == [s["result"] for s in out["sites"]]


def test_an_oversized_body_is_refused_before_parsing(cluster):
    resp = httpx.post(
        cluster.nodes["chu-a"].url + "/node/v1/studies", content=b"x" * 2_000_000, timeout=60
    )
    assert refusal(resp) == (413, "too_large")
