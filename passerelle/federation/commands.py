"""`passerelle keys`, `passerelle serve` and `passerelle node` (a node's approvals register).

Thin adapters over keys.py, server.py and register.py.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from pathlib import Path

import typer

from passerelle.errors import UserError

keys_app = typer.Typer(help="Ed25519 key pairs for hubs and nodes.", no_args_is_help=True)
node_app = typer.Typer(help="A node's own approvals register.", no_args_is_help=True)


class ServeRole(StrEnum):
    NODE = "node"
    HUB = "hub"
    ALL = "all"


@keys_app.command("generate")
def keys_generate(
    out: Path = typer.Option(..., "--out", help="Folder for NAME.key (mode 0600) and NAME.pub."),
    name: str = typer.Option("passerelle", "--name", help="Key name (the node or hub name)."),
) -> None:
    """Make an Ed25519 key pair. Prints the key id and the public key, never the private key."""
    from passerelle.federation.keys import KeyPair, public_b64

    key = KeyPair.generate(name)
    private_path, public_path = key.write(out)
    typer.echo(f"private key: {private_path} (mode 0600; keep it on this machine)")
    typer.echo(f"public key:  {public_path}")
    typer.echo(f"key id:      {key.key_id}")
    typer.echo(f'trust entry: {{ name = "{name}", public_key = "{public_b64(key.public.key)}" }}')


def serve(
    role: ServeRole = typer.Option(
        ServeRole.ALL, "--role", help="node, hub, or all (hub + local node)."
    ),
    config: Path = typer.Option(
        None, "--config", help="node.toml / hub.toml (see docs/federation.md)."
    ),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    ssl_keyfile: str = typer.Option(None, "--ssl-keyfile", help="TLS private key (PEM)."),
    ssl_certfile: str = typer.Option(None, "--ssl-certfile", help="TLS certificate chain (PEM)."),
    ssl_ca_certs: str = typer.Option(
        None, "--ssl-ca-certs", help="CA bundle to verify client certificates."
    ),
    ssl_cert_reqs: int = typer.Option(
        None, "--ssl-cert-reqs", help="2 = require a client certificate (mTLS)."
    ),
) -> None:
    """Run a node, a hub, or both in one process (the embedded default)."""
    from passerelle.config import get_settings
    from passerelle.federation import server

    if role is not ServeRole.ALL and config is None:
        raise UserError(f"--role {role.value} needs --config")
    node = None
    if role is ServeRole.NODE:
        app, node = server.node_app(config)
    elif role is ServeRole.HUB:
        app = server.hub_app(config)[0]
    else:
        embedded = server.embedded_app(config)
        app, node = embedded.app, embedded.node
    if node is not None and node.config.sync is not None:
        from passerelle.federation.sync import SyncThread

        SyncThread(node.register, node.config.sync).start()  # pulls decisions periodically
    server.serve(
        app,
        host=host,
        port=port,
        ssl_keyfile=ssl_keyfile,
        ssl_certfile=ssl_certfile,
        ssl_ca_certs=ssl_ca_certs,
        ssl_cert_reqs=ssl_cert_reqs,
        log_level=get_settings().log_level,
    )


def _register(config: Path | None):
    from passerelle.federation.config import _path, _read
    from passerelle.federation.register import NodeRegister

    if config is None:  # the embedded default (`serve --role all` without --config)
        from passerelle.config import get_settings

        return NodeRegister(get_settings().data_dir / "node.db")
    data = _read(config)
    node = data.get("node") or {}
    if not node.get("name"):
        raise UserError(f"{config}: missing [node] name")
    base = config.resolve().parent
    db = _path(base, node.get("database")) or base / f"{node['name']}-node.db"
    return NodeRegister(db)


CONFIG_HELP = "The node's node.toml (default: the embedded node under the data folder)."


@node_app.command("approve")
def node_approve(
    project: str = typer.Option(..., "--project", help="Project id, as the hub sends it."),
    purpose: str = typer.Option(..., "--purpose", help="Approved purpose, e.g. research."),
    by: str = typer.Option(..., "--by", help="Who decided (the committee)."),
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
    output_type: str = typer.Option("aggregates", "--output-type"),
    reference: str = typer.Option(
        "", "--reference", help="Decision reference (minutes, CNIL ref)."
    ),
    expires: str = typer.Option(None, "--expires", help="Expiry date, YYYY-MM-DD (UTC)."),
) -> None:
    """Record a decision of this hospital's committee in the node's register."""
    expires_at = None
    if expires:
        try:
            expires_at = dt.datetime.fromisoformat(expires).replace(tzinfo=dt.UTC)
        except ValueError:
            raise UserError("--expires must be YYYY-MM-DD") from None
    reg = _register(config)
    reg.approve(project, purpose, output_type, by, reference, expires_at)
    typer.echo(f"approved {project} for {purpose} / {output_type}")


@node_app.command("revoke")
def node_revoke(
    project: str = typer.Option(..., "--project"),
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
) -> None:
    """Revoke every approval of a project at this node."""
    n = _register(config).revoke(project)
    typer.echo(f"revoked {n} approval(s) of {project}")


@node_app.command("sync")
def node_sync(
    config: Path = typer.Option(..., "--config", help="The node's node.toml, with a [sync] table."),
) -> None:
    """Pull this organisation's committee decisions from the single window into the register."""
    from passerelle.federation.config import NodeConfig
    from passerelle.federation.register import NodeRegister
    from passerelle.federation.sync import sync

    cfg = NodeConfig.load(config, require_trust=False)
    if cfg.sync is None:
        raise UserError(f"{config}: no [sync] table (hub_api, api_key_file, organisation)")
    reg = NodeRegister(cfg.database)
    try:
        report = sync(reg, cfg.sync)
    finally:
        reg.close()
    for line in report.changes:
        typer.echo(line)
    typer.echo(report.summary())


@node_app.command("approvals")
def node_approvals(config: Path = typer.Option(None, "--config", help=CONFIG_HELP)) -> None:
    """List the node's approvals."""
    now = dt.datetime.now(dt.UTC)
    for a in _register(config).all_approvals():
        state = "active" if a.active(now) else "inactive"
        typer.echo(f"{a.project_id}\t{a.purpose}\t{a.output_type}\t{a.approved_by}\t{state}")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    app.add_typer(node_app, name="node")
    app.command("serve")(serve)
