"""Building the node, hub and embedded (`--role all`) applications, and serving them with uvicorn."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from passerelle.config import Settings, get_settings
from passerelle.errors import ConfigError
from passerelle.federation.config import HubConfig, NodeConfig, NodeEntry
from passerelle.federation.hub import HubService, create_hub_app
from passerelle.federation.keys import KeyPair, TrustList
from passerelle.federation.node import NodeService, create_node_app

LOCAL_NODE = "local"
LOCAL_URL = "http://local-node"


def node_app(config_path: Path) -> tuple[FastAPI, NodeService]:
    service = NodeService(NodeConfig.load(config_path))
    service.store()  # fail now, with one clear line, if the store is unreachable
    return create_node_app(service), service


def hub_app(config_path: Path) -> tuple[FastAPI, HubService]:
    """The hub; with `web = true` in [hub], the single window too (REST API and pages)."""
    config = HubConfig.load(config_path)
    service = HubService(config)
    app = create_hub_app(service)
    if config.web:
        web = _web_app()
        if web is None:
            raise ConfigError(f"{config_path}: web = true needs the web package")
        app.mount("/", web)  # after the hub's own routes: /hub/v1/* is matched first
    return app, service


def _own_key(folder: Path, name: str) -> KeyPair:
    path = folder / f"{name}.key"
    if path.exists():
        return KeyPair.load(path, name=name)
    key = KeyPair.generate(name)
    key.write(folder)
    return key


@dataclass
class Embedded:
    app: FastAPI
    hub: HubService
    node: NodeService


def embedded_app(config_path: Path | None, settings: Settings | None = None) -> Embedded:
    """Hub and a local node in one process; the hub reaches the node in-process (no socket).

    Without a config file: keys under <data_dir>/keys (made on first start), the node's store
    is the settings' store (DuckDB under <data_dir> by default), its register <data_dir>/node.db.
    With one: a file holding both a [hub] and a [node] table (and any remote [[nodes]])."""
    settings = settings or get_settings()
    if config_path is None:
        keys = settings.data_dir / "keys"
        hub_key = _own_key(keys, "hub")
        node_key = _own_key(keys, LOCAL_NODE)
        node_cfg = NodeConfig(
            name=LOCAL_NODE,
            store=settings.default_store_url(),
            key=node_key,
            trusted_hubs=TrustList(),
            database=settings.data_dir / "node.db",
        )
        hub_cfg = HubConfig(name="hub", key=hub_key)
    else:
        node_cfg = NodeConfig.load(config_path, require_trust=False)
        hub_cfg = HubConfig.load(config_path)
    node_cfg.trusted_hubs.add(hub_cfg.key.public)
    hub_cfg.nodes.insert(0, NodeEntry(node_cfg.name, LOCAL_URL, node_cfg.key.public))
    node = NodeService(node_cfg)
    node_fastapi = create_node_app(node)
    hub = HubService(hub_cfg, transports={node_cfg.name: httpx.ASGITransport(app=node_fastapi)})
    hub_fastapi = create_hub_app(hub)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await hub.aclose()
        node.close()

    app = FastAPI(title="Passerelle", lifespan=lifespan)
    for route in [*node_fastapi.router.routes, *hub_fastapi.router.routes]:
        if getattr(route, "path", "").startswith(("/node/", "/hub/")):
            app.router.routes.append(route)
    app.exception_handlers.update(hub_fastapi.exception_handlers)
    web = _web_app()
    if web is not None:
        app.mount("/", web)
    return Embedded(app, hub, node)


def _web_app() -> Any:
    """The single window's app (REST API under /api/v1), when the web package provides one."""
    try:
        from passerelle.web import app as web_module  # type: ignore[attr-defined]
    except ImportError:
        return None
    factory = getattr(web_module, "create_app", None)
    return factory() if callable(factory) else None


def serve(
    app: FastAPI,
    *,
    host: str,
    port: int,
    ssl_keyfile: str | None = None,
    ssl_certfile: str | None = None,
    ssl_ca_certs: str | None = None,
    ssl_cert_reqs: int | None = None,
    log_level: str = "warning",
) -> None:
    import uvicorn

    kwargs: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level.lower(),
        "access_log": False,
        # longer than the hub's pooled-connection expiry (2 s), see HubService._client
        "timeout_keep_alive": 30,
    }
    if ssl_keyfile:
        kwargs.update(ssl_keyfile=ssl_keyfile, ssl_certfile=ssl_certfile)
    if ssl_ca_certs:
        kwargs["ssl_ca_certs"] = ssl_ca_certs
    if ssl_cert_reqs is not None:
        kwargs["ssl_cert_reqs"] = ssl_cert_reqs
    # The app, its store, keys and imported modules live as long as the process: moved out of
    # the collector's generations so that the allocations of each request do not re-scan them.
    gc.collect()
    gc.freeze()
    uvicorn.run(app, **kwargs)
