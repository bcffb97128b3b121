"""Fixtures for the federation tests: GiBleed split by person into three stores on different
engines (DuckDB, PostgreSQL, DuckDB) plus a fourth node to kill, and the union in one store."""

from __future__ import annotations

import uuid

import httpx
import pytest
from cluster import NodeSpec, load, split_by_person, start_cluster
from conftest import postgres_admin_url

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
    engines = {s["site"]: s["result"]["engine"] for s in out["sites"]}
    assert engines["chu-b"].startswith("postgres") and engines["chu-a"].startswith("duckdb")
    truth = union_truth(union_store)
    compared = bounded = 0
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
                    bounded += 1
    assert compared >= 4
    # the published Eunomia figures, summed over three hospitals
    persons = next(t for t in out["merged"]["tables"] if t["name"] == "persons")
    assert sorted(persons["rows"]) == [[8507, 237], [8532, 242]]
    entries = next(t for t in out["merged"]["tables"] if t["name"] == "entries")
    assert entries["rows"] == [[479]]


def union_truth(store_url):
    """The same study on one store holding everyone, with no disclosure control."""
    from passerelle.cdm.stores import open_store
    from passerelle.federation.study import study_language

    lang = study_language()
    with open_store(store_url) as store:
        result = lang.run(store, lang.parse(SPEC))
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
