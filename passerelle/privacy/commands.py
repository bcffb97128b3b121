"""`passerelle extract ...` and `passerelle privacy ...`: thin adapters over the privacy package."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console

from passerelle.errors import UserError
from passerelle.privacy.policy import NO_POLICY_LABEL, Policy, default_policy, load_policy
from passerelle.query.result import StudyResult

privacy_app = typer.Typer(
    help="Disclosure policies, pseudonym keys and extracts.", no_args_is_help=True
)
console = Console()

MASTER_KEY_NAME = "keys/pseudonym-master.key"
#: The embedded node's register (`serve --role all` and `node approve` without --config).
EMBEDDED_REGISTER = "node.db"


def register(app: typer.Typer) -> None:
    app.add_typer(privacy_app, name="privacy")
    app.command("extract")(extract)


def policy_from_option(value: str | None) -> Policy | None:
    """`--policy FILE` -> Policy; `--policy none` -> None (the local steward only);
    no option -> the built-in default policy."""
    if value is None:
        return default_policy()
    if value.strip().lower() == "none":
        return None
    return load_policy(value)


def protect_for_cli(result: StudyResult, policy_option: str | None) -> tuple[StudyResult, str]:
    """What `study run --policy` does: the protected result and a line saying what was applied."""
    from passerelle.privacy.disclosure import protect

    policy = policy_from_option(policy_option)
    protected = protect(result, policy)
    if policy is None:
        return protected, f"policy: {NO_POLICY_LABEL}"
    return protected, f"policy: {policy.label}"


def _master_key_path(key_file: Path | None) -> Path:
    if key_file is not None:
        return key_file
    from passerelle.config import get_settings

    return get_settings().data_dir / MASTER_KEY_NAME


@privacy_app.command("policy")
def show_policy(
    file: str = typer.Argument(..., help="Policy YAML file."),
) -> None:
    """Validate a policy file and print it with every default filled in, and its version."""
    policy = load_policy(file)
    console.print(f"[bold]{policy.label}[/]")
    typer.echo(yaml.safe_dump(policy.normalised(), sort_keys=False))


@privacy_app.command("keygen")
def keygen(
    key_file: Path = typer.Option(
        None, "--key-file", help="Default: <data_dir>/" + MASTER_KEY_NAME
    ),
) -> None:
    """Create the node's pseudonym master key (mode 0600; never overwritten, never printed)."""
    from passerelle.privacy.pseudonym import create_master_key

    path = create_master_key(_master_key_path(key_file))
    console.print(f"created {path} (mode 0600)")


def _load_spec(spec: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    if not spec.exists():
        raise UserError(f"{spec}: no such file")
    try:
        data = yaml.safe_load(spec.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"{spec}: not valid YAML/JSON: {exc}") from None
    if not isinstance(data, dict) or "extract" not in data:
        raise UserError(f"{spec}: an extract spec is a study spec with an `extract:` section")
    data = dict(data)
    extract_part = data.pop("extract") or {}
    data.setdefault("analyses", [{"name": "size", "count": "persons"}])
    return data, extract_part


def extract(
    spec: Path = typer.Argument(..., help="Study spec (cohort) with an `extract:` section."),
    project: str = typer.Option(
        ..., "--project", help="Approved project id (keys the pseudonyms)."
    ),
    purpose: str = typer.Option(..., "--purpose", help="The approved purpose, e.g. research."),
    out: Path = typer.Option(
        ..., "--out", help="New or empty folder for the extract and its risk report."
    ),
    store: str = typer.Option(
        None, "--store", "-s", help="Store URL (default: the node's, else the settings')."
    ),
    policy: str = typer.Option(
        None, "--policy", help="Disclosure policy YAML (default: the node's, else built in)."
    ),
    node_config: Path = typer.Option(
        None,
        "--node-config",
        help="The node's node.toml: its register, store and policy are the defaults.",
    ),
    register_url: str = typer.Option(
        None,
        "--register",
        help="The node's approvals register, a SQLite file or SQLAlchemy URL (default: the "
        "node.toml's, else <data_dir>/" + EMBEDDED_REGISTER + ", the embedded node's).",
    ),
    key_file: Path = typer.Option(
        None,
        "--key-file",
        help="Pseudonym master key (default <data_dir>/" + MASTER_KEY_NAME + ").",
    ),
) -> None:
    """Write a pseudonymised, k-anonymous extract (Parquet, CSV) and its risk report, for a
    project the node's register approves for this purpose and output type extract."""
    from passerelle.cdm.stores import open_store
    from passerelle.config import get_settings
    from passerelle.privacy.extract import ExtractSpec
    from passerelle.privacy.pipeline import cohort_rows
    from passerelle.privacy.pseudonym import Pseudonymizer, load_master_key
    from passerelle.privacy.release import ExtractRequest, release_extract
    from passerelle.query.parse import parse_study

    node = _node_defaults(node_config)
    pol = policy_from_option(policy if policy is not None else node.get("policy"))
    if pol is None:
        raise UserError("an extract always needs a policy: `--policy none` is for aggregates only")
    study_data, extract_data = _load_spec(spec)
    study = parse_study(study_data)
    request = ExtractRequest(
        project,
        purpose,
        ExtractSpec.parse(extract_data),
        hashlib.sha256(spec.read_bytes()).hexdigest(),
        out,
    )
    url = store or node.get("store") or get_settings().default_store_url()

    def cohort() -> Any:
        with open_store(url) as st:
            return cohort_rows(st, study)

    def pseudonymizer() -> Pseudonymizer:
        master = load_master_key(_master_key_path(key_file), create=True)
        return Pseudonymizer.for_project(master, project, pol.extract.date_shift_days)

    register = _node_register(register_url or node.get("register"))
    try:
        released = release_extract(register, request, pol, cohort, pseudonymizer)
    finally:
        register.close()
    risk = released.extract.report.data
    console.print(
        f"extract: {risk['records_released']} of {risk['records_in']} records, "
        f"k={risk['k']}, highest prosecutor risk {risk['prosecutor_risk']['highest']:.3f}, "
        f"policy {pol.label}"
    )
    console.print(f"recorded in the node register as {request.request_id}")
    for p in released.paths:
        console.print(f"  {p}")


def _node_defaults(node_config: Path | None) -> dict[str, str]:
    """The register, store and policy a node.toml names (none without one)."""
    if node_config is None:
        return {}
    from passerelle.federation.config import NodeConfig

    cfg = NodeConfig.load(node_config, require_trust=False)
    found = {"register": str(cfg.database), "store": cfg.store}
    return found | ({"policy": str(cfg.policy)} if cfg.policy is not None else {})


def _node_register(location: str | None) -> Any:
    """The node's own approvals register (federation's NodeRegister: this adapter is the one
    place privacy reaches it; the release logic sees only `release.ExtractRegister`)."""
    from passerelle.federation.register import NodeRegister

    if location is None:
        from passerelle.config import get_settings

        location = str(get_settings().data_dir / EMBEDDED_REGISTER)
    return NodeRegister(location)
