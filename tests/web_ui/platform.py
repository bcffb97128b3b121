"""A whole Passerelle on 127.0.0.1 for the browser tests: two hospital nodes (DuckDB, each a
disjoint half of GiBleed's persons), the hub, and the web application, each a real process
(`passerelle serve --role node|hub` from tests/federation/cluster.py, and uvicorn for the web
app), seeded through the access and catalogue services with organisations, one user per role
and one published dataset per hospital (profiled from its store before the nodes start)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from passerelle.access.accounts import Accounts
from passerelle.access.context import Context
from passerelle.access.db import Database
from passerelle.access.enums import Domain, OrgType, Role
from passerelle.access.schemas import OrgIn, UserIn
from passerelle.catalog.profile import released_profile
from passerelle.catalog.schemas import DatasetIn
from passerelle.catalog.service import Catalog
from passerelle.config import Settings
from tests.federation.cluster import (
    Cluster,
    NodeSpec,
    Proc,
    free_port,
    load,
    split_by_person,
    start_cluster,
    wait_ready,
)

PASSWORD = "journey-password-1"
HOSPITALS = {"chu-nord": "CHU Nord", "chu-sud": "CHU Sud"}
POLICY = "policy: {name}\nmin_cell: 5\nrounding: 1\n"
USERS = {
    "applicant": ("applicant@lab.example", "Lab Recherche", [Role.APPLICANT]),
    "reviewer-chu-nord": ("reviewer@nord.example", "CHU Nord", [Role.REVIEWER]),
    "reviewer-chu-sud": ("reviewer@sud.example", "CHU Sud", [Role.REVIEWER]),
    "steward": ("steward@nord.example", "CHU Nord", [Role.STEWARD]),
    "admin": ("admin@nord.example", "CHU Nord", [Role.ADMIN]),
    "auditor": ("auditor@autorite.example", "Autorité de contrôle", [Role.AUDITOR]),
}
ORGS = {
    "CHU Nord": OrgType.HOSPITAL,
    "CHU Sud": OrgType.HOSPITAL,
    "Lab Recherche": OrgType.ACADEMIC_LAB,
    "Autorité de contrôle": OrgType.PUBLIC_BODY,
}


@dataclass
class Platform:
    workdir: Path
    cluster: Cluster
    web: Proc
    node_configs: dict[str, Path]

    @property
    def url(self) -> str:
        return self.web.url

    def approve_at_node(self, node: str, project: str, purpose: str = "research") -> None:
        """The hospital records its committee's decision in its node's own register."""
        subprocess.run(
            [
                sys.executable,
                "-m",
                "passerelle",
                "node",
                "approve",
                "--config",
                str(self.node_configs[node]),
                "--project",
                project,
                "--purpose",
                purpose,
                "--by",
                f"{node} committee",
            ],
            check=True,
            capture_output=True,
            cwd=self.workdir,
        )

    def stop(self) -> None:
        self.web.stop()
        self.cluster.stop()


def web_settings(workdir: Path, hub_url: str) -> dict[str, str]:
    return {
        "PASSERELLE_DATA_DIR": str(workdir / "web"),
        "PASSERELLE_APP_DB_URL": f"sqlite:///{workdir / 'web' / 'passerelle.db'}",
        "PASSERELLE_STORE": f"duckdb:///{workdir / 'web-vocabulary.duckdb'}",
        "PASSERELLE_HUB_URL": hub_url,
        "PASSERELLE_LOG_LEVEL": "WARNING",
    }


def seed(env: dict[str, str], stores: dict[str, str]) -> None:
    settings = Settings(
        data_dir=Path(env["PASSERELLE_DATA_DIR"]), app_db_url=env["PASSERELLE_APP_DB_URL"]
    )
    db = Database.from_settings(settings)
    db.upgrade()
    ctx = Context(db, settings)
    accounts, catalog = Accounts(ctx), Catalog(ctx)
    orgs = {name: accounts.create_org(None, OrgIn(name=name, type=t)) for name, t in ORGS.items()}
    for email, org, roles in USERS.values():
        accounts.create_user(
            None,
            orgs[org].id,
            UserIn(email=email, name=email.split("@")[0].title(), password=PASSWORD, roles=roles),
        )
    for node, name in HOSPITALS.items():
        ds = catalog.create(
            None,
            DatasetIn(
                title=f"{name} — gastrointestinal bleeding cohort (OMOP CDM)",
                description=f"Hospital stays and treatments of {name}, standardised in the "
                "OMOP CDM v5.4: conditions, drugs, procedures, visits.",
                domains=[Domain.PERSON, Domain.CONDITION, Domain.DRUG, Domain.VISIT],
                population="Adults treated at the hospital",
                keywords=["bleeding", "NSAID", "hospital"],
                contact_email=f"dpo@{node}.example",
                contact_name="DPO",
                legal_basis="GDPR 6.1.e, 9.2.j; MR-004",
            ),
            orgs[name].id,
        )
        catalog.set_profile(None, ds.id, released_profile(stores[node]))
    db.dispose()


def start_platform(gibleed_dir: Path, workdir: Path) -> Platform:
    workdir.mkdir(parents=True, exist_ok=True)
    parts = split_by_person(gibleed_dir, workdir / "split", len(HOSPITALS))
    stores = {}
    for (node, _name), folder in zip(HOSPITALS.items(), parts, strict=True):
        stores[node] = f"duckdb:///{workdir / f'{node}.duckdb'}"
        load(stores[node], folder)
    # The web server's own copy of the vocabulary, for concept search (a DuckDB file is opened
    # by one process at a time).
    shutil.copy(workdir / "chu-nord.duckdb", workdir / "web-vocabulary.duckdb")
    specs = [NodeSpec(n, stores[n], POLICY.format(name=n)) for n in HOSPITALS]
    env = web_settings(workdir, "")
    seed(env, stores)
    cluster = start_cluster(workdir, specs, timeout=60.0)
    try:
        assert cluster.hub is not None
        web = launch_web(workdir, {**env, "PASSERELLE_HUB_URL": cluster.hub.url})
    except BaseException:
        cluster.stop()
        raise
    return Platform(workdir, cluster, web, cluster.node_configs)


def launch_web(workdir: Path, env: dict[str, str]) -> Proc:
    port = free_port()
    log = workdir / "web.log"
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "passerelle.web.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **env}, cwd=workdir
        )
    return wait_ready(Proc("web", port, proc, log), "/catalogue")
