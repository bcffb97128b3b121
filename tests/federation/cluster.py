"""A real federation on 127.0.0.1 for tests and benchmarks: node and hub processes started
with `passerelle serve`, each on a free port, waited for, and always stopped."""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import httpx

from passerelle.federation.keys import KeyPair, public_b64

# Tables that are not about one person go to every node.
PERSON_COLUMN = "person_id"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def split_by_person(src: Path, dest: Path, parts: int) -> list[Path]:
    """Split an OMOP CSV folder into `parts` folders by person_id modulo `parts`: every
    person-level table is partitioned, every other table (vocabulary, care sites, ...) copied
    to each part. COHORT (subject_id) is left out."""
    folders = [dest / f"part{k}" for k in range(parts)]
    for f in folders:
        f.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    for path in sorted(src.iterdir()):
        name = path.name.split(".")[0]
        if not path.name.lower().endswith((".csv", ".csv.gz")) or name.lower() == "cohort":
            continue
        with gzip.open(path, "rt") if path.name.endswith(".gz") else path.open() as fh:
            header = fh.readline().strip().lower().split(",")
        if PERSON_COLUMN not in header:
            for folder in folders:
                shutil.copy(path, folder / path.name)
            continue
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE t AS SELECT * FROM read_csv('{path}', all_varchar=true, header=true)"
        )
        for k, folder in enumerate(folders):
            out = folder / f"{name}.csv"
            where = f"CAST({PERSON_COLUMN} AS BIGINT) % {parts} = {k}"
            con.execute(f"COPY (SELECT * FROM t WHERE {where}) TO '{out}' (HEADER, DELIMITER ',')")
    con.close()
    return folders


def load(store_url: str, folder: Path) -> None:
    from passerelle.cdm.load import load_folder
    from passerelle.cdm.stores import open_store

    with open_store(store_url) as store:
        store.init()
        result = load_folder(store, folder)
        assert result.ok, result.to_dict()["failed"]


@dataclass
class Proc:
    name: str
    port: int
    proc: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def launch(
    name: str,
    role: str,
    config: Path | None,
    workdir: Path,
    port: int | None = None,
    env: dict[str, str] | None = None,
) -> Proc:
    port = port or free_port()
    log = workdir / f"{name}.log"
    env = {**os.environ, "PASSERELLE_LOG_LEVEL": "WARNING", **(env or {})}
    cmd = [sys.executable, "-m", "passerelle", "serve", "--role", role, "--port", str(port)]
    if config is not None:
        cmd += ["--config", str(config)]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    return Proc(name, port, proc, log)


def wait_ready(p: Proc, health: str, seconds: float = 240) -> Proc:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if p.proc.poll() is not None:
            raise RuntimeError(
                f"{p.name} exited with {p.proc.returncode}:\n{p.log.read_text()[-3000:]}"
            )
        try:
            if httpx.get(p.url + health, timeout=1).status_code == 200:
                return p
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    p.stop()
    raise RuntimeError(f"{p.name} did not become ready:\n{p.log.read_text()[-3000:]}")


def start(
    name: str, role: str, config: Path, workdir: Path, health: str, port: int | None = None
) -> Proc:
    return wait_ready(launch(name, role, config, workdir, port), health)


@dataclass
class NodeSpec:
    name: str
    store: str
    policy: str  # YAML text
    approvals: list[tuple[str, str, str]] = field(default_factory=list)  # project, purpose, output


@dataclass
class Cluster:
    workdir: Path
    hub_key: KeyPair
    node_keys: dict[str, KeyPair]
    nodes: dict[str, Proc]
    hub: Proc | None
    node_configs: dict[str, Path]

    def stop(self) -> None:
        for p in [*self.nodes.values(), *([self.hub] if self.hub else [])]:
            p.stop()


def write_node(workdir: Path, spec: NodeSpec, hub_key: KeyPair) -> tuple[Path, KeyPair]:
    keys = workdir / "keys"
    key = KeyPair.generate(spec.name)
    key.write(keys)
    (workdir / f"{spec.name}-policy.yaml").write_text(spec.policy)
    config = workdir / f"{spec.name}.toml"
    config.write_text(
        f"""[node]
name = "{spec.name}"
store = "{spec.store}"
private_key = "keys/{spec.name}.key"
policy = "{spec.name}-policy.yaml"
database = "{spec.name}-node.db"

[[trusted_hubs]]
name = "hub"
public_key = "{public_b64(hub_key.public.key)}"
"""
    )
    from passerelle.federation.register import NodeRegister

    reg = NodeRegister(workdir / f"{spec.name}-node.db")
    for project, purpose, output in spec.approvals:
        reg.approve(project, purpose, output, "committee", "test")
    reg.close()
    return config, key


def write_hub(
    workdir: Path,
    hub_key: KeyPair,
    nodes: dict[str, tuple[str, KeyPair]],
    timeout: float,
    retries: int = 2,
) -> Path:
    config = workdir / "hub.toml"
    lines = [
        "[hub]",
        'name = "hub"',
        'private_key = "keys/hub.key"',
        f"timeout_seconds = {timeout}",
        "connect_timeout_seconds = 2",
        f"retries = {retries}",
        "",
    ]
    for name, (url, key) in nodes.items():
        lines += [
            "[[nodes]]",
            f'name = "{name}"',
            f'url = "{url}"',
            f'public_key = "{public_b64(key.public.key)}"',
            "",
        ]
    config.write_text("\n".join(lines))
    return config


def start_cluster(
    workdir: Path, specs: list[NodeSpec], timeout: float = 30.0, with_hub: bool = True
) -> Cluster:
    workdir.mkdir(parents=True, exist_ok=True)
    hub_key = KeyPair.generate("hub")
    hub_key.write(workdir / "keys")
    configs, keys, procs = {}, {}, {}
    try:
        for spec in specs:
            configs[spec.name], keys[spec.name] = write_node(workdir, spec, hub_key)
            procs[spec.name] = launch(spec.name, "node", configs[spec.name], workdir)
        for p in procs.values():
            wait_ready(p, "/node/v1/health")
        hub = None
        if with_hub:
            hub_config = write_hub(
                workdir, hub_key, {n: (procs[n].url, keys[n]) for n in procs}, timeout
            )
            hub = start("hub", "hub", hub_config, workdir, "/hub/v1/health")
    except BaseException:
        for p in procs.values():
            p.stop()
        raise
    return Cluster(workdir, hub_key, keys, procs, hub, configs)
