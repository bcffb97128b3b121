"""`passerelle org|user|request|audit|db ...`: thin adapters over the service layer.

The CLI acts as the local operator (audited as "cli"); the database is migrated to the latest
revision before a command runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from passerelle.access.enums import OrgType, RequestStatus, ReviewStatus, Role
from passerelle.errors import UserError

console = Console(soft_wrap=True)
org_app = typer.Typer(help="Organisations (data producers and users).", no_args_is_help=True)
user_app = typer.Typer(help="Users, roles and node API keys.", no_args_is_help=True)
request_app = typer.Typer(help="Access requests, reviews and deadlines.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit chain.", no_args_is_help=True)
db_app = typer.Typer(help="The app database (migrations).", no_args_is_help=True)


def context():
    from passerelle.access.context import Context
    from passerelle.config import get_settings

    ctx = Context.from_settings(get_settings())
    ctx.db.upgrade()
    return ctx


def _json(model) -> None:
    console.print_json(model.model_dump_json())


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None


def _validated(model, data: dict):
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "input"
        raise UserError(f"{where}: {err['msg']}") from None


# -- organisations ----------------------------------------------------------------------------
@org_app.command("create")
def org_create(
    name: str,
    type: OrgType = typer.Option(..., "--type", help="Kind of organisation."),
    review_days: int = typer.Option(None, help="This producer's review deadline in days."),
) -> None:
    """Create an organisation."""
    from passerelle.access.accounts import Accounts
    from passerelle.access.schemas import OrgIn

    data = _validated(OrgIn, {"name": name, "type": type, "review_days": review_days})
    org = Accounts(context()).create_org(None, data)
    console.print(f"organisation {org.id}: {org.name} ({org.type.value})")


@org_app.command("list")
def org_list(limit: int = 100, offset: int = 0) -> None:
    """List organisations."""
    from passerelle.access.accounts import Accounts

    page = Accounts(context()).list_orgs(offset, limit)
    table = Table("id", "name", "type", "review days")
    for o in page.items:
        table.add_row(str(o.id), o.name, o.type.value, str(o.review_days or "default"))
    console.print(table)


@org_app.command("set-review-days")
def org_review_days(org_id: int, days: int) -> None:
    """Set a producer's review deadline (days)."""
    from passerelle.access.accounts import Accounts
    from passerelle.access.schemas import OrgPatch

    org = Accounts(context()).update_org(None, org_id, _validated(OrgPatch, {"review_days": days}))
    console.print(f"organisation {org.id}: review deadline {org.review_days} days")


# -- users and keys ---------------------------------------------------------------------------
@user_app.command("create")
def user_create(
    org_id: int,
    email: str,
    name: str = typer.Option(..., help="Display name."),
    role: list[Role] = typer.Option([], "--role", help="A role (repeat for several)."),
    password: bool = typer.Option(
        False, "--password", help="Ask for a password (local account); else OIDC only."
    ),
) -> None:
    """Create a user in an organisation."""
    from passerelle.access.accounts import Accounts
    from passerelle.access.schemas import UserIn

    secret = (
        typer.prompt("password", hide_input=True, confirmation_prompt=True) if password else None
    )
    data = _validated(UserIn, {"email": email, "name": name, "roles": role, "password": secret})
    user = Accounts(context()).create_user(None, org_id, data)
    console.print(f"user {user.id}: {user.email} roles={','.join(user.roles) or '-'}")


@user_app.command("list")
def user_list(org_id: int, limit: int = 100, offset: int = 0) -> None:
    """List the users of an organisation."""
    from passerelle.access.accounts import Accounts

    page = Accounts(context()).list_users(None, org_id, offset, limit)
    table = Table("id", "email", "name", "roles", "active")
    for u in page.items:
        table.add_row(str(u.id), u.email, u.name, ",".join(u.roles), str(u.active))
    console.print(table)


@user_app.command("set-roles")
def user_roles(user_id: int, role: list[Role] = typer.Option([], "--role")) -> None:
    """Replace a user's roles."""
    from passerelle.access.accounts import Accounts
    from passerelle.access.schemas import UserPatch

    user = Accounts(context()).update_user(None, user_id, UserPatch(roles=role))
    console.print(f"user {user.id}: roles={','.join(user.roles) or '-'}")


@user_app.command("disable")
def user_disable(user_id: int) -> None:
    """Disable an account (its tokens stop working)."""
    from passerelle.access.accounts import Accounts
    from passerelle.access.schemas import UserPatch

    Accounts(context()).update_user(None, user_id, UserPatch(active=False))
    console.print(f"user {user_id}: disabled")


@user_app.command("api-key")
def user_api_key(org_id: int, name: str) -> None:
    """Create a node API key for an organisation; the key is printed once."""
    from passerelle.access.accounts import Accounts
    from passerelle.access.schemas import ApiKeyIn

    key = Accounts(context()).create_api_key(None, org_id, _validated(ApiKeyIn, {"name": name}))
    console.print(f"api key {key.id} ({key.name}): {key.key}")
    console.print("store it now: only its hash is kept")


@user_app.command("revoke-key")
def user_revoke_key(key_id: int) -> None:
    """Revoke a node API key."""
    from passerelle.access.accounts import Accounts

    Accounts(context()).revoke_api_key(None, key_id)
    console.print(f"api key {key_id}: revoked")


# -- requests ---------------------------------------------------------------------------------
@request_app.command("list")
def request_list(
    status: RequestStatus = typer.Option(None, help="Only this status."),
    limit: int = 50,
    offset: int = 0,
) -> None:
    """List access requests with each producer's clock."""
    from passerelle.access.requests import Requests

    page = Requests(context()).list(None, status, offset, limit)
    table = Table("id", "title", "status", "reviews (producer: status, days left)")
    for r in page.items:
        reviews = "; ".join(
            f"{v.producer_name}: {v.status.value} {v.days_left:g}d {v.clock}" for v in r.reviews
        )
        table.add_row(str(r.id), r.title, r.status.value, reviews)
    console.print(table)
    console.print(f"{page.total} request(s)")


@request_app.command("show")
def request_show(request_id: int) -> None:
    """One request as JSON."""
    from passerelle.access.requests import Requests

    _json(Requests(context()).get(None, request_id))


@request_app.command("create")
def request_create(
    file: Path,
    org_id: int = typer.Option(..., help="The applicant organisation."),
    user_id: int = typer.Option(..., help="The applicant user."),
) -> None:
    """Create a draft request from a JSON file (the fields of POST /api/v1/requests)."""
    from passerelle.access.requests import Requests
    from passerelle.access.schemas import RequestIn

    data = _validated(RequestIn, _read_json(file))
    req = Requests(context()).create(None, data, organisation_id=org_id, created_by=user_id)
    console.print(f"request {req.id}: {req.status.value}")


@request_app.command("submit")
def request_submit(request_id: int) -> None:
    """Submit a draft: each producer's review and clock start."""
    from passerelle.access.requests import Requests

    req = Requests(context()).submit(None, request_id)
    for r in req.reviews:
        console.print(f"review {r.id}: {r.producer_name} due {r.due_at:%Y-%m-%d}")


@request_app.command("decide")
def request_decide(
    review_id: int,
    status: ReviewStatus,
    conditions: str = typer.Option("", help="Conditions of an approval with conditions."),
    comment: str = typer.Option("", help="A comment for the applicant."),
) -> None:
    """Record a producer's decision on a review."""
    from passerelle.access.requests import Requests
    from passerelle.access.schemas import DecisionIn

    data = _validated(DecisionIn, {"status": status, "conditions": conditions, "comment": comment})
    req = Requests(context()).decide(None, review_id, data)
    console.print(f"request {req.id}: {req.status.value}")


@request_app.command("extend")
def request_extend(
    review_id: int, days: int, reason: str = typer.Option(..., help="Why (required).")
) -> None:
    """Extend a review's deadline once."""
    from passerelle.access.requests import Requests
    from passerelle.access.schemas import ExtensionIn

    data = _validated(ExtensionIn, {"days": days, "reason": reason})
    Requests(context()).extend(None, review_id, data)
    console.print(f"review {review_id}: extended by {days} days")


@request_app.command("tick")
def request_tick() -> None:
    """Apply the clock now: reminders, approval on silence (if enabled), expiry."""
    from passerelle.access.requests import Requests

    out = Requests(context()).tick()
    console.print(
        f"reminded {out.reminded}, approved on silence {out.approved_on_silence}, "
        f"expired {out.expired}"
    )


# -- audit ------------------------------------------------------------------------------------
@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the chain; exit 1 naming the first broken entry."""
    from passerelle.access import audit

    with context().db.read() as s:
        result = audit.verify(s)
    if not result.ok:
        console.print(f"[bold red]{result.message()}[/]")
        raise typer.Exit(1)
    console.print(result.message())


@audit_app.command("head")
def audit_head() -> None:
    """The chain's length and head hash."""
    from passerelle.access import audit

    with context().db.read() as s:
        h = audit.head(s)
    console.print(f"{h.count} entries, head {h.hash}")


@audit_app.command("log")
def audit_log(limit: int = 20, offset: int = 0) -> None:
    """The latest entries."""
    from passerelle.access import audit

    with context().db.read() as s:
        _, rows = audit.list_entries(s, offset, limit)
        table = Table("seq", "at", "actor", "action", "object", "hash")
        for e in rows:
            table.add_row(
                str(e.seq), e.at, e.actor, e.action, f"{e.object_type}:{e.object_id}", e.hash[:16]
            )
    console.print(table)


# -- database ---------------------------------------------------------------------------------
@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Migrate the app database up (to the latest revision by default)."""
    from passerelle.access.db import Database

    db = Database.from_settings()
    db.upgrade(revision)
    console.print(f"app database at revision {db.current_revision()}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Target revision, or 'base'.")) -> None:
    """Migrate the app database down."""
    from passerelle.access.db import Database

    db = Database.from_settings()
    db.downgrade(revision)
    console.print(f"app database at revision {db.current_revision()}")


def register(app: typer.Typer) -> None:
    app.add_typer(org_app, name="org")
    app.add_typer(user_app, name="user")
    app.add_typer(request_app, name="request")
    app.add_typer(audit_app, name="audit")
    app.add_typer(db_app, name="db")
