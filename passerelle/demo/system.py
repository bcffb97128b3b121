"""The whole demo on one machine: three hospitals' stores built from FHIR through the real
ingest, the single window's content and history, keys and configuration for three nodes and a
hub, and the four processes (three nodes; the hub, which also serves the single window) on
127.0.0.1. Each node pulls its hospital's committee decisions from the single window
(`[sync]` in its node.toml, with its organisation's node API key).

Layout under `<data_dir>/demo/` (replaced on every run): `<node>/` (fhir/, cdm.duckdb,
node.toml, policy.yaml, node.db), `vocabulary-csv/`, `vocabulary.duckdb` (the web's concept
search), `passerelle.db` (the app database), `keys/`, `hub.toml`, `web/` (the web's data
folder: results), `logs/`. Node API keys: `keys/<node>.api-key`.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from passerelle.access.clock import MovableClock
from passerelle.access.context import Context
from passerelle.access.db import Database
from passerelle.config import Settings
from passerelle.demo.fhir import HOSPITALS
from passerelle.demo.history import HISTORY_DAYS, History, plan_history, replay
from passerelle.demo.hospitals import (
    HospitalBuild,
    build_hospital,
    demo_root,
    fresh_store_with_vocabulary,
    write_vocabulary_csv,
)
from passerelle.demo.procs import Processes, free_port, port_is_free
from passerelle.demo.seed import Seeded, profile_datasets, seed_accounts, seed_catalogue

START_YEAR, END_YEAR = 2012, 2024
# The node's disclosure policy: the privacy package's defaults, and every purpose the single
# window knows (its purposes are the access package's, plus the privacy package's own names).
NODE_POLICY = """policy: {node}-demo
purposes: [research, public_policy, public_health, care_quality, market_access,
           medical_affairs, ai_product, teaching, feasibility]
"""

Say = Callable[[str], None]


@dataclass(frozen=True)
class Options:
    persons: int = 1000  # per hospital
    seed: int = 42
    requests: int = 300  # about; the history's size
    port: int = 8000  # the web application's port (a free one if taken)


@dataclass
class System:
    settings: Settings
    options: Options
    root: Path
    hospitals: dict[str, HospitalBuild] = field(default_factory=dict)
    app_db_url: str = ""
    vocabulary_url: str = ""
    seeded: Seeded | None = None
    history: History | None = None
    node_configs: dict[str, Path] = field(default_factory=dict)
    node_registers: dict[str, Path] = field(default_factory=dict)
    node_public_keys: dict[str, str] = field(default_factory=dict)  # base64, for the hub
    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def context(self, clock: MovableClock | None = None) -> Context:
        db = Database(self.app_db_url)
        s = self.settings.model_copy(update={"app_db_url": self.app_db_url})
        return Context(db, s) if clock is None else Context(db, s, clock)


def build(settings: Settings, options: Options, say: Say) -> System:
    """Everything but the processes: stores, app database, history, keys and configs."""
    root = demo_root(settings.data_dir)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    system = System(settings, options, root)
    vocab_csv = root / "vocabulary-csv"
    write_vocabulary_csv(vocab_csv)
    system.vocabulary_url = fresh_store_with_vocabulary(root / "vocabulary.duckdb", vocab_csv)
    ingest_settings = settings.model_copy(update={"data_dir": root})
    # The hospitals are built in worker processes while this one fills the app database.
    workers = max(1, min(len(HOSPITALS), (os.cpu_count() or 1)))
    pool = multiprocessing.get_context("spawn").Pool(workers)
    try:
        say(
            f"building {len(HOSPITALS)} hospitals (FHIR export, then ingest) in {workers} process(es)"
        )
        jobs = [
            pool.apply_async(
                build_hospital, (h, root, vocab_csv, ingest_settings, options.persons, options.seed)
            )
            for h in HOSPITALS
        ]
        pool.close()
        clock = _app_database(system, say)
        for job in jobs:
            built = job.get()
            system.hospitals[built.hospital.node] = built
            say(
                f"{built.hospital.node}: {sum(built.resources.values()):,} FHIR resources, "
                f"{sum(built.loaded.values()):,} loaded, {built.quarantined} quarantined, "
                f"{built.rows.get('person', 0):,} persons"
            )
        pool.join()
    except BaseException:
        pool.terminate()  # Ctrl-C or a failure: no worker outlives the demo
        pool.join()
        raise
    assert system.seeded is not None
    clock.set(system.now)
    say("catalogue: each steward profiles its dataset from its store (disclosure-controlled)")
    stores = {n: system.hospitals[n].store_url for n in system.seeded.datasets}
    profile_datasets(system.context(clock), system.seeded, stores)
    _federation_files(system)
    return system


def _app_database(system: System, say: Say) -> MovableClock:
    system.app_db_url = f"sqlite:///{system.root / 'passerelle.db'}"
    db = Database(system.app_db_url)
    db.upgrade()
    clock = MovableClock(system.now - timedelta(days=HISTORY_DAYS + 30))
    ctx = system.context(clock)
    say("single window: organisations, users (one per role), datasets")
    seeded = seed_accounts(ctx)
    seed_catalogue(ctx, seeded, {}, START_YEAR, END_YEAR)
    system.seeded = seeded
    plans = plan_history(system.now, system.options.seed, system.options.requests / 300)
    say(f"history: replaying {len(plans)} requests through the access services")
    system.history = replay(ctx, clock, seeded, plans, system.now)
    h = system.history
    say(f"history: {h.played:,} steps, {h.runs} first study runs, {len(h.approvals)} approvals")
    return clock


def _federation_files(system: System) -> None:
    from passerelle.federation.keys import KeyPair, public_b64

    keys = system.root / "keys"
    hub_key = KeyPair.generate("hub")
    hub_key.write(keys)
    node_keys = {}
    for h in HOSPITALS:
        folder = system.root / h.node
        key = node_keys[h.node] = KeyPair.generate(h.node)
        key.write(keys)
        (folder / "policy.yaml").write_text(NODE_POLICY.format(node=h.node), encoding="utf-8")
        config = folder / "node.toml"
        config.write_text(
            "[node]\n"
            f'name = "{h.node}"\n'
            f'store = "{system.hospitals[h.node].store_url}"\n'
            f'private_key = "{keys / (h.node + ".key")}"\n'
            'policy = "policy.yaml"\n'
            'database = "node.db"\n\n'
            "[[trusted_hubs]]\n"
            'name = "hub"\n'
            f'public_key = "{public_b64(hub_key.public.key)}"\n',
            encoding="utf-8",
        )
        system.node_configs[h.node] = config
        system.node_registers[h.node] = folder / "node.db"
    # Each node's register receives its committee's decisions (the history's included) by sync
    # from the single window, with a node API key of the hospital (`[sync]`, added in start()).
    from passerelle.access.accounts import Accounts
    from passerelle.access.schemas import ApiKeyIn

    assert system.seeded is not None
    accounts = Accounts(system.context())
    for h in HOSPITALS:
        key_file = keys / f"{h.node}.api-key"
        secret = accounts.create_api_key(None, system.seeded.orgs[h.node], ApiKeyIn(name="node"))
        key_file.touch(mode=0o600)
        key_file.write_text(str(secret.key), encoding="utf-8")
    system.node_public_keys = {n: public_b64(k.public.key) for n, k in node_keys.items()}


def hub_config(system: System, node_urls: dict[str, str]) -> Path:
    keys = system.root / "keys"
    lines = [
        "[hub]",
        'name = "hub"',
        f'private_key = "{keys / "hub.key"}"',
        "timeout_seconds = 60",
        "web = true",  # the single window (REST API, pages, observatory) in the same process
        "",
    ]
    for node, url in node_urls.items():
        lines += [
            "[[nodes]]",
            f'name = "{node}"',
            f'url = "{url}"',
            f'public_key = "{system.node_public_keys[node]}"',
            "",
        ]
    path = system.root / "hub.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


SYNC_SECONDS = 3  # how often a demo node pulls its committee's decisions


def _add_sync(system: System, web_url: str) -> None:
    names = {h.node: h.name for h in HOSPITALS}
    for node, config in system.node_configs.items():
        text = config.read_text(encoding="utf-8").split("\n[sync]\n")[0]
        config.write_text(
            text + "\n[sync]\n"
            f'hub_api = "{web_url}"\n'
            f'organisation = "{names[node]}"\n'
            f'api_key_file = "{system.root / "keys" / (node + ".api-key")}"\n'
            f"interval_seconds = {SYNC_SECONDS}\n",
            encoding="utf-8",
        )


def start(system: System, check: bool) -> tuple[Processes, str, str]:
    """Launch the three nodes, then the hub serving the single window; wait until all answer.
    Returns the processes, the hub URL and the web URL (the same process)."""
    procs = Processes(system.root / "logs")
    web_port = system.options.port
    if check or web_port == 0 or not port_is_free(web_port):
        web_port = free_port()
    web_url = f"http://127.0.0.1:{web_port}"
    _add_sync(system, web_url)
    try:
        node_urls = {}
        for node, config in system.node_configs.items():
            port = free_port()
            child = procs.launch(
                node,
                [
                    "-m",
                    "passerelle",
                    "serve",
                    "--role",
                    "node",
                    "--config",
                    str(config),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                port,
                "/node/v1/health",
                env={"PASSERELLE_DATA_DIR": str(system.root / node)},
            )
            node_urls[node] = child.url
        hub = procs.launch(
            "hub",
            [
                "-m",
                "passerelle",
                "serve",
                "--role",
                "hub",
                "--config",
                str(hub_config(system, node_urls)),
                "--host",
                "127.0.0.1",
                "--port",
                str(web_port),
            ],
            web_port,
            "/api/v1/audit/head",
            env={
                "PASSERELLE_DATA_DIR": str(system.root / "web"),
                "PASSERELLE_APP_DB_URL": system.app_db_url,
                "PASSERELLE_STORE": system.vocabulary_url,
                "PASSERELLE_HUB_URL": web_url,
                "PASSERELLE_PUBLIC_BASE_URL": web_url,
            },
        )
        procs.wait_ready()
    except BaseException:
        procs.stop()
        raise
    return procs, hub.url, web_url
