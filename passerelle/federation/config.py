"""node.toml and hub.toml: what a node or a hub needs, read once (format in docs/federation.md).

Relative paths in a config file are relative to the folder holding that file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from passerelle.errors import ConfigError
from passerelle.federation.keys import KeyPair, PublicKey, TrustList, load_public


def _read(path: Path) -> dict[str, Any]:
    try:
        with Path(path).open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None


def _path(base: Path, value: str | None) -> Path | None:
    if not value:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def _section(data: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    section = data.get(name)
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: missing [{name}] table")
    return section


def _check_keys(section: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown} (allowed: {sorted(allowed)})")


def _public(entry: dict[str, Any], base: Path, where: str) -> PublicKey:
    _check_keys(entry, {"name", "public_key", "public_key_file", "url"}, where)
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: name is required")
    return load_public(
        name, inline=entry.get("public_key"), path=_path(base, entry.get("public_key_file"))
    )


@dataclass(frozen=True)
class SyncConfig:
    """[sync] of node.toml: where the node pulls its own committee's decisions from."""

    hub_api: str  # the single window's base URL (its REST API is under /api/v1)
    api_key: str  # the organisation's node API key (never logged)
    organisation: str  # the node's organisation, as the single window names it
    interval_seconds: float = 300.0
    timeout_seconds: float = 30.0

    def __repr__(self) -> str:  # never show the key
        return f"SyncConfig(hub_api={self.hub_api!r}, organisation={self.organisation!r})"

    @classmethod
    def parse(cls, section: Any, base: Path, where: str) -> SyncConfig:
        if not isinstance(section, dict):
            raise ConfigError(f"{where} must be a table")
        allowed = {
            "hub_api",
            "api_key",
            "api_key_file",
            "organisation",
            "interval_seconds",
            "timeout_seconds",
        }
        _check_keys(section, allowed, where)
        for required in ("hub_api", "organisation"):
            if not section.get(required):
                raise ConfigError(f"{where}: {required} is required")
        key = str(section.get("api_key") or "")
        key_file = _path(base, section.get("api_key_file"))
        if key_file is not None:
            try:
                key = key_file.read_text().strip()
            except OSError:
                raise ConfigError(f"{where}: cannot read api_key_file {key_file}") from None
        if not key:
            raise ConfigError(f"{where}: api_key or api_key_file is required")
        interval = float(section.get("interval_seconds", 300.0))
        if interval <= 0:
            raise ConfigError(f"{where}: interval_seconds must be positive")
        return cls(
            hub_api=str(section["hub_api"]).rstrip("/"),
            api_key=key,
            organisation=str(section["organisation"]),
            interval_seconds=interval,
            timeout_seconds=float(section.get("timeout_seconds", 30.0)),
        )


@dataclass
class NodeConfig:
    name: str
    store: str
    key: KeyPair
    trusted_hubs: TrustList
    database: Path
    policy: Path | None = None
    max_envelope_seconds: int = 3600
    clock_skew_seconds: int = 60
    sync: SyncConfig | None = None

    @classmethod
    def load(cls, path: Path, *, require_trust: bool = True) -> NodeConfig:
        path = Path(path)
        data = _read(path)
        base = path.resolve().parent
        node = _section(data, "node", path)
        allowed = {
            "name",
            "store",
            "private_key",
            "database",
            "policy",
            "max_envelope_seconds",
            "clock_skew_seconds",
        }
        _check_keys(node, allowed, f"{path} [node]")
        for required in ("name", "store", "private_key"):
            if not node.get(required):
                raise ConfigError(f"{path} [node]: {required} is required")
        key_path = _path(base, node["private_key"])
        assert key_path is not None
        hubs = data.get("trusted_hubs", [])
        if not isinstance(hubs, list) or (require_trust and not hubs):
            raise ConfigError(f"{path}: at least one [[trusted_hubs]] entry is required")
        trust = TrustList([_public(h, base, f"{path} [[trusted_hubs]]") for h in hubs])
        store = str(node["store"])
        if store.startswith("duckdb:///") and not store.startswith("duckdb:////"):
            rel = store[len("duckdb:///") :]
            if rel and not Path(rel).is_absolute():
                store = f"duckdb:///{base / rel}"
        return cls(
            name=str(node["name"]),
            store=store,
            key=KeyPair.load(key_path, name=str(node["name"])),
            trusted_hubs=trust,
            database=_path(base, node.get("database")) or base / f"{node['name']}-node.db",
            policy=_path(base, node.get("policy")),
            max_envelope_seconds=int(node.get("max_envelope_seconds", 3600)),
            clock_skew_seconds=int(node.get("clock_skew_seconds", 60)),
            sync=SyncConfig.parse(data["sync"], base, f"{path} [sync]") if "sync" in data else None,
        )


@dataclass(frozen=True)
class NodeEntry:
    """A node as the hub knows it: where it listens and the key its results must carry."""

    name: str
    url: str
    key: PublicKey


@dataclass
class HubConfig:
    name: str
    key: KeyPair
    nodes: list[NodeEntry] = field(default_factory=list)
    timeout_seconds: float = 30.0
    connect_timeout_seconds: float = 3.0
    retries: int = 2
    envelope_seconds: int = 300
    api_token: str = ""
    web: bool = False  # also serve the single window (REST API under /api/v1 and the pages)

    @property
    def trusted_nodes(self) -> TrustList:
        return TrustList([n.key for n in self.nodes])

    def node(self, name: str) -> NodeEntry | None:
        return next((n for n in self.nodes if n.name == name), None)

    @classmethod
    def load(cls, path: Path) -> HubConfig:
        path = Path(path)
        data = _read(path)
        base = path.resolve().parent
        hub = _section(data, "hub", path)
        allowed = {
            "name",
            "private_key",
            "timeout_seconds",
            "connect_timeout_seconds",
            "retries",
            "envelope_seconds",
            "api_token",
            "web",
        }
        _check_keys(hub, allowed, f"{path} [hub]")
        for required in ("name", "private_key"):
            if not hub.get(required):
                raise ConfigError(f"{path} [hub]: {required} is required")
        key_path = _path(base, hub["private_key"])
        assert key_path is not None
        nodes = []
        for entry in data.get("nodes", []):
            where = f"{path} [[nodes]]"
            if not entry.get("url"):
                raise ConfigError(f"{where}: url is required")
            nodes.append(
                NodeEntry(entry["name"], str(entry["url"]).rstrip("/"), _public(entry, base, where))
            )
        names = [n.name for n in nodes]
        if len(set(names)) != len(names):
            raise ConfigError(f"{path}: node names must be unique")
        return cls(
            name=str(hub["name"]),
            key=KeyPair.load(key_path, name=str(hub["name"])),
            nodes=nodes,
            timeout_seconds=float(hub.get("timeout_seconds", 30.0)),
            connect_timeout_seconds=float(hub.get("connect_timeout_seconds", 3.0)),
            retries=int(hub.get("retries", 2)),
            envelope_seconds=int(hub.get("envelope_seconds", 300)),
            api_token=str(hub.get("api_token", "")),
            web=bool(hub.get("web", False)),
        )
