"""`passerelle demo --check`: exercise the running demo over real HTTP on 127.0.0.1.

1. every node and the hub answer their health checks;
2. a feasibility count through the hub: every hospital answers, the merged count is positive;
3. a new request by a biotech's applicant to the three hospitals, over the REST API; each
   hospital's reviewer approves it over the REST API; each hospital's node picks the decision
   up by its own sync (`[sync]` in node.toml) and records it in its register;
4. the catalogue (REST search, page, concept search over the vocabulary);
5. the approved study, run from the applicant's project workspace page (the web application
   sends it to the hub, which fans it out to the three nodes); the merged result is downloaded;
6. the observatory page and its purposes CSV: with 150 requests or more, the survey's first
   purpose is first for hospitals, biotechs, digital-health companies and public bodies;
7. the audit chain verifies (the auditor's REST call, and recomputed here).
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from csv import DictReader
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from passerelle.access.enums import Role
from passerelle.demo.history import DIABETES_STUDY
from passerelle.demo.seed import DEMO_PASSWORD, Seeded, email_of
from passerelle.demo.system import System

TIMEOUT = 120.0


class CheckFailed(AssertionError):
    pass


@dataclass(frozen=True)
class Outcome:
    name: str
    ok: bool
    detail: str


def _ok(cond: bool, message: str) -> None:
    if not cond:
        raise CheckFailed(message)


def _email(seeded: Seeded, key: str, role: Role) -> str:
    _ok((key, role) in seeded.principals, f"no demo user with role {role.value} in {key}")
    return email_of(key, role)


def _token(client: httpx.Client, web: str, email: str) -> dict[str, str]:
    r = client.post(f"{web}/api/v1/auth/login", json={"email": email, "password": DEMO_PASSWORD})
    _ok(r.status_code == 200, f"login of {email} answered HTTP {r.status_code}")
    return {"authorization": f"Bearer {r.json()['token']}"}


def check_health(client: httpx.Client, system: System, urls: dict[str, str]) -> str:
    r = client.get(urls["hub"] + "/hub/v1/nodes")
    _ok(r.status_code == 200, f"hub nodes answered HTTP {r.status_code}")
    return f"{len(system.node_configs)} nodes and the hub are up"


def check_feasibility(client: httpx.Client, urls: dict[str, str]) -> str:
    body = {"study": DIABETES_STUDY, "applicant": "demo-check"}
    r = client.post(urls["hub"] + "/hub/v1/feasibility", json=body)
    _ok(r.status_code == 200, f"feasibility answered HTTP {r.status_code}")
    answer = r.json()
    statuses = {s["site"]: s["status"] for s in answer.get("sites", [])}
    _ok(
        len(statuses) == 3 and set(statuses.values()) == {"ok"},
        f"feasibility: site statuses {statuses}",
    )
    _ok(not answer.get("partial"), "feasibility answer is partial")
    return f"feasibility through the hub: {', '.join(sorted(statuses))} answered"


SYNC_WAIT_SECONDS = 120.0


def _synced(path: Path, project: str) -> bool:
    """Wait until the node's own sync has recorded the approval in its register."""
    from passerelle.federation.register import NodeRegister

    deadline = time.monotonic() + SYNC_WAIT_SECONDS
    while True:
        reg = NodeRegister(path)
        try:
            now = datetime.now(UTC)
            if any(a.active(now) for a in reg.approvals_of(project)):
                return True
        finally:
            reg.close()
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def approve_request(client: httpx.Client, system: System, web: str) -> int:
    seeded = system.seeded
    assert seeded is not None
    applicant = _token(client, web, _email(seeded, "genomix", Role.APPLICANT))
    body = {
        "title": "Vérification de la démo — diabète de type 2",
        "purpose": ["research"],
        "description": "Demande créée par passerelle demo --check.",
        "gdpr_art6": "6.1.f",
        "gdpr_art9": "9.2.j",
        "methodology": "MR-004",
        "dataset_ids": sorted(seeded.datasets.values()),
        "studies": [DIABETES_STUDY],
        "domains": ["condition_occurrence"],
        "output_type": "aggregates",
    }
    r = client.post(f"{web}/api/v1/requests", json=body, headers=applicant)
    _ok(r.status_code == 201, f"creating a request answered HTTP {r.status_code}: {r.text[:300]}")
    rid = r.json()["id"]
    r = client.post(f"{web}/api/v1/requests/{rid}/submit", headers=applicant)
    _ok(r.status_code == 200, f"submitting answered HTTP {r.status_code}: {r.text[:300]}")
    by_org = {org_id: key for key, org_id in seeded.orgs.items()}
    for review in r.json()["reviews"]:
        node = by_org[review["producer_id"]]
        reviewer = _token(client, web, _email(seeded, node, Role.REVIEWER))
        d = client.post(
            f"{web}/api/v1/reviews/{review['id']}/decision",
            json={"status": "approved", "comment": "demo --check"},
            headers=reviewer,
        )
        _ok(d.status_code == 200, f"{node}'s decision answered HTTP {d.status_code}")
    for node in sorted(by_org[r["producer_id"]] for r in r.json()["reviews"]):
        _ok(_synced(system.node_registers[node], f"request-{rid}"), f"{node} did not sync it")
    final = client.get(f"{web}/api/v1/requests/{rid}", headers=applicant).json()
    _ok(final["status"] == "active", f"request {rid} is {final['status']}, not active")
    return int(rid)


def _csrf(client: httpx.Client, web: str) -> str:
    client.get(f"{web}/login")
    token = client.cookies.get("passerelle_csrf")
    _ok(bool(token), "the login page set no CSRF cookie")
    return str(token)


def run_study_from_workspace(system: System, web: str, rid: int) -> str:
    seeded = system.seeded
    assert seeded is not None
    with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as browser:
        csrf = _csrf(browser, web)
        email = _email(seeded, "genomix", Role.APPLICANT)
        r = browser.post(
            f"{web}/login", data={"email": email, "password": DEMO_PASSWORD, "csrf": csrf}
        )
        _ok(r.status_code in (302, 303), f"page login answered HTTP {r.status_code}")
        r = browser.post(f"{web}/projects/{rid}/run", data={"study": "0", "csrf": csrf})
        _ok(r.status_code in (302, 303), f"running the study answered HTTP {r.status_code}")
        m = re.search(r"run=([^&]+)", r.headers.get("location", ""))
        _ok(m is not None, "the workspace did not name the run")
        run = m.group(1)  # type: ignore[union-attr]
        r = browser.get(f"{web}/projects/{rid}/runs/{run}.json")
        _ok(r.status_code == 200, f"downloading the result answered HTTP {r.status_code}")
        answer: dict[str, Any] = r.json()
    sites = {s["site"]: s["status"] for s in answer.get("sites", [])}
    _ok(len(sites) == 3 and set(sites.values()) == {"ok"}, f"study site statuses {sites}")
    _ok(not answer.get("partial"), "the study's answer is partial")
    tables = answer.get("merged", {}).get("tables", [])
    size = next((t for t in tables if t.get("name") == "size"), None)
    _ok(size is not None and size.get("rows"), "the merged result has no 'size' table")
    return f"study request-{rid} ran on {', '.join(sorted(sites))}; merged result downloaded"


def check_catalogue(client: httpx.Client, system: System, web: str) -> str:
    r = client.get(f"{web}/api/v1/datasets", params={"q": "OMOP"})
    _ok(r.status_code == 200, f"catalogue search answered HTTP {r.status_code}")
    found = r.json()
    _ok(found["total"] == len(system.node_configs), f"catalogue search found {found['total']}")
    profiled = [d for d in found["items"] if d.get("profile")]
    _ok(len(profiled) == len(found["items"]), "a dataset has no profile")
    page = client.get(f"{web}/catalogue", params={"q": "OMOP"})
    _ok(page.status_code == 200, f"catalogue page answered HTTP {page.status_code}")
    c = client.get(f"{web}/ui/concepts", params={"q": "diabetes"})
    _ok(c.status_code == 200, f"concept search answered HTTP {c.status_code}")
    ids = {x["concept_id"] for x in c.json()}
    _ok(201826 in ids, "concept search does not find type 2 diabetes (201826)")
    return f"{found['total']} profiled datasets found; concept search answers"


# The survey's first purpose per actor type: the observatory must show it first.
SURVEY_FIRST = {
    "hospital": "research",
    "biotech": "research",
    "digital_health": "research",
    "public_body": "public_policy",
}
SURVEY_CHECK_MIN_REQUESTS = 150  # below this, rounding may tie the first two purposes


def check_observatory(client: httpx.Client, system: System, web: str) -> str:
    r = client.get(f"{web}/observatory")
    _ok(r.status_code == 200, f"observatory page answered HTTP {r.status_code}")
    csv = client.get(f"{web}/observatory/purposes.csv")
    _ok(csv.status_code == 200, f"observatory CSV answered HTTP {csv.status_code}")
    rows = list(DictReader(io.StringIO(csv.text)))
    _ok(bool(rows) and "share" in rows[0], "the observatory's purposes CSV has no share column")
    shares: dict[str, dict[str, float]] = {}
    for row in rows:
        shares.setdefault(row["actor_type"], {})[row["purpose"]] = float(row["share"])
    shown = []
    for actor, purpose in SURVEY_FIRST.items():
        mine = shares.get(actor, {})
        if system.options.requests >= SURVEY_CHECK_MIN_REQUESTS:
            _ok(
                bool(mine) and max(mine, key=lambda p: mine[p]) == purpose,
                f"{actor}: {purpose} is not the first purpose ({mine})",
            )
        if purpose in mine:
            shown.append(f"{actor} {purpose} {mine[purpose]:.1%}")
    return "observatory page and CSV served; " + ", ".join(shown)


def check_audit(client: httpx.Client, system: System, web: str) -> str:
    from passerelle.access import audit
    from passerelle.access.db import Database

    seeded = system.seeded
    assert seeded is not None
    auditor = _token(client, web, _email(seeded, "operateur", Role.AUDITOR))
    r = client.get(f"{web}/api/v1/audit/verify", headers=auditor)
    _ok(r.status_code == 200, f"audit verify answered HTTP {r.status_code}")
    data = r.json()
    _ok(bool(data.get("ok")), f"audit chain does not verify: {data}")
    with Database(system.app_db_url).read() as s:
        v = audit.verify(s)
    _ok(v.ok, f"audit chain does not verify: {v.message}")
    return f"audit chain verified ({v.count:,} entries, head {v.head_hash[:12]})"


def run_checks(system: System, urls: dict[str, str], say: Callable[[str], None]) -> list[Outcome]:
    web = urls["web"]
    outcomes: list[Outcome] = []

    def step(name: str, fn: Callable[[], str]) -> None:
        try:
            detail = fn()
            outcomes.append(Outcome(name, True, detail))
            say(f"ok     {name}: {detail}")
        except (CheckFailed, httpx.HTTPError, KeyError, ValueError) as exc:
            outcomes.append(Outcome(name, False, f"{type(exc).__name__}: {exc}"))
            say(f"FAILED {name}: {type(exc).__name__}: {exc}")

    with httpx.Client(timeout=TIMEOUT) as client:
        step("health", lambda: check_health(client, system, urls))
        step("feasibility", lambda: check_feasibility(client, urls))
        rid: list[int] = []

        def request() -> str:
            rid.append(approve_request(client, system, web))
            return f"request {rid[0]} filed over the REST API and approved by 3 hospitals"

        step("request", request)
        if rid:
            step("study", lambda: run_study_from_workspace(system, web, rid[0]))
        else:
            outcomes.append(Outcome("study", False, "no approved request to run"))
        step("catalogue", lambda: check_catalogue(client, system, web))
        step("observatory", lambda: check_observatory(client, system, web))
        step("audit", lambda: check_audit(client, system, web))
    return outcomes
