"""Organisations, users, logins, bearer tokens and node API keys (service layer).

A `None` principal is the local operator at the CLI (trusted, audited as "cli").
"""

from __future__ import annotations

from datetime import timedelta

from passerelle.access import permissions as perm
from passerelle.access.auth import (
    API_KEY,
    API_KEY_PREFIX,
    SESSION,
    TOKEN_PREFIX,
    Principal,
    check_password,
    hash_password,
    new_secret,
    secret_hash,
)
from passerelle.access.context import Context, actor_of
from passerelle.access.enums import Role
from passerelle.access.errors import (
    Conflict,
    Forbidden,
    NotFound,
    TooManyAttempts,
    Unauthenticated,
)
from passerelle.access.models import LoginAttempt, Organisation, Token, User, UserRole
from passerelle.access.repository import AccessData
from passerelle.access.schemas import (
    ApiKeyIn,
    ApiKeyOut,
    OrgIn,
    OrgOut,
    OrgPage,
    OrgPatch,
    Page,
    TokenOut,
    UserIn,
    UserOut,
    UserPage,
    UserPatch,
)


def user_out(u: User) -> UserOut:
    return UserOut(
        id=u.id,
        organisation_id=u.organisation_id,
        email=u.email,
        name=u.name,
        roles=sorted(u.roles),
        active=u.active,
    )


def key_out(t: Token, key: str | None = None) -> ApiKeyOut:
    return ApiKeyOut(
        id=t.id,
        organisation_id=t.organisation_id,
        name=t.name,
        created_at=t.created_at,
        revoked_at=t.revoked_at,
        key=key,
    )


def _org(dal: AccessData, org_id: int) -> Organisation:
    org = dal.get_org(org_id)
    if org is None:
        raise NotFound(f"organisation {org_id} does not exist")
    return org


def _user(dal: AccessData, user_id: int) -> User:
    user = dal.get_user(user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist")
    return user


class Accounts:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # -- organisations --------------------------------------------------------------------
    def create_org(self, p: Principal | None, data: OrgIn) -> OrgOut:
        if p is not None:
            perm.require_role(p, Role.ADMIN)
        with self.ctx.uow.write() as dal:
            if dal.org_by_name(data.name):
                raise Conflict(f"an organisation named {data.name!r} already exists")
            org = dal.add(Organisation(**data.model_dump(), created_at=self.ctx.clock.now()))
            dal.audit(
                actor_of(p), "org.create", "organisation", org.id, data.model_dump(mode="json")
            )
            return OrgOut.model_validate(org)

    def update_org(self, p: Principal | None, org_id: int, data: OrgPatch) -> OrgOut:
        with self.ctx.uow.write() as dal:
            org = _org(dal, org_id)
            if p is not None:
                perm.require_role_in(p, org_id, Role.ADMIN, Role.STEWARD)
            changes = data.model_dump(exclude_unset=True, mode="json")
            for key, value in changes.items():
                setattr(org, key, value)
            dal.audit(actor_of(p), "org.update", "organisation", org.id, changes)
            return OrgOut.model_validate(org)

    def get_org(self, org_id: int) -> OrgOut:
        with self.ctx.uow.read() as dal:
            return OrgOut.model_validate(_org(dal, org_id))

    def list_orgs(self, offset: int = 0, limit: int = 50) -> Page[OrgOut]:
        with self.ctx.uow.read() as dal:
            total, rows = dal.list_orgs(offset, limit)
            items = [OrgOut.model_validate(o) for o in rows]
            return OrgPage(total=total, offset=offset, limit=limit, items=items)

    # -- users ----------------------------------------------------------------------------
    def create_user(self, p: Principal | None, org_id: int, data: UserIn) -> UserOut:
        if p is not None:
            perm.may_manage_org(p, org_id)
        with self.ctx.uow.write() as dal:
            _org(dal, org_id)
            email = data.email.lower()
            if dal.user_by_email(email):
                raise Conflict("a user with this e-mail already exists")
            user = User(
                organisation_id=org_id,
                email=email,
                name=data.name,
                password_hash=hash_password(data.password) if data.password else None,
                active=True,
                created_at=self.ctx.clock.now(),
            )
            user.role_rows = [UserRole(role=r) for r in sorted(set(data.roles))]
            dal.add(user)
            dal.audit(
                actor_of(p),
                "user.create",
                "user",
                user.id,
                {"organisation_id": org_id, "roles": sorted(r.value for r in set(data.roles))},
            )
            return user_out(user)

    def update_user(self, p: Principal | None, user_id: int, data: UserPatch) -> UserOut:
        with self.ctx.uow.write() as dal:
            user = _user(dal, user_id)
            if p is not None:
                perm.may_manage_org(p, user.organisation_id)
            details: dict[str, object] = {}
            if data.name is not None:
                user.name = data.name
                details["name"] = "changed"
            if data.active is not None:
                user.active = data.active
                details["active"] = data.active
            if data.password is not None:
                user.password_hash = hash_password(data.password)
                details["password"] = "changed"
            if data.roles is not None:
                user.role_rows = [UserRole(role=r) for r in sorted(set(data.roles))]
                details["roles"] = sorted(r.value for r in set(data.roles))
            dal.add(user)
            dal.audit(actor_of(p), "user.update", "user", user.id, details)
            return user_out(user)

    def get_user(self, p: Principal | None, user_id: int) -> UserOut:
        with self.ctx.uow.read() as dal:
            user = _user(dal, user_id)
            if p is not None and p.user_id != user_id:
                perm.may_manage_org(p, user.organisation_id)
            return user_out(user)

    def list_users(
        self, p: Principal | None, org_id: int, offset: int = 0, limit: int = 50
    ) -> Page[UserOut]:
        if p is not None:
            perm.may_manage_org(p, org_id)
        with self.ctx.uow.read() as dal:
            _org(dal, org_id)
            total, rows = dal.list_users(org_id, offset, limit)
            return UserPage(
                total=total, offset=offset, limit=limit, items=[user_out(u) for u in rows]
            )

    # -- login and tokens -----------------------------------------------------------------
    def login(self, email: str, password: str) -> TokenOut:
        s, now = self.ctx.settings, self.ctx.clock.now()
        email = email.lower()
        with self.ctx.uow.write() as dal:
            since = now - timedelta(minutes=s.login_window_minutes)
            if dal.failures_since(email, since) >= s.login_max_failures:
                raise TooManyAttempts(
                    f"too many failed logins; try again in {s.login_window_minutes} minutes"
                )
            user = dal.user_by_email(email)
            ok = check_password(user.password_hash if user else None, password)
            ok = ok and user is not None and user.active
            dal.add(LoginAttempt(email=email, at=now, success=bool(ok)))
            if not ok or user is None:
                failed = True
            else:
                failed = False
                out = self._issue(dal, user, "auth.login")
        if failed:
            raise Unauthenticated("wrong e-mail or password")
        return out

    def _issue(self, dal: AccessData, user: User, action: str) -> TokenOut:
        now = self.ctx.clock.now()
        token = new_secret(TOKEN_PREFIX)
        expires = now + timedelta(minutes=self.ctx.settings.token_ttl_minutes)
        row = dal.add(
            Token(
                kind=SESSION,
                token_hash=secret_hash(token),
                user_id=user.id,
                organisation_id=user.organisation_id,
                name="login",
                created_at=now,
                expires_at=expires,
            )
        )
        dal.audit(f"user:{user.id}", action, "token", row.id, {"expires_at": expires.isoformat()})
        return TokenOut(token=token, expires_at=expires)

    def login_oidc(self, subject: str, email: str | None) -> TokenOut:
        """A token for the user the identity provider vouched for (linked by e-mail once)."""
        with self.ctx.uow.write() as dal:
            user = dal.user_by_subject(subject)
            if user is None and email:
                user = dal.user_by_email(email.lower())
                if user is not None and user.oidc_subject is None:
                    user.oidc_subject = subject
                    dal.audit(f"user:{user.id}", "user.link_oidc", "user", user.id, {})
            if user is None or not user.active:
                raise Forbidden("no active Passerelle account matches this identity")
            return self._issue(dal, user, "auth.login_oidc")

    def logout(self, token: str) -> None:
        with self.ctx.uow.write() as dal:
            row = dal.token_by_hash(secret_hash(token))
            if row is None or row.revoked_at is not None:
                raise Unauthenticated("unknown or revoked token")
            row.revoked_at = self.ctx.clock.now()
            dal.audit(f"user:{row.user_id}", "auth.logout", "token", row.id, {})

    def authenticate(self, secret: str) -> Principal:
        """The principal behind a bearer token or API key; Unauthenticated otherwise."""
        now = self.ctx.clock.now()
        with self.ctx.uow.rows() as rows:
            found = rows.credential(secret_hash(secret))
        if found is None:
            raise Unauthenticated("unknown or revoked credentials")
        if found.revoked_at is not None:
            raise Unauthenticated("unknown or revoked credentials")
        if found.expires_at is not None and found.expires_at <= now:
            raise Unauthenticated("this token has expired; log in again")
        if found.kind == API_KEY:
            return Principal(
                "node",
                found.organisation_id,
                found.organisation_type,
                frozenset(),
                key_id=found.token_id,
            )
        if found.user_id is None or not found.user_active:
            raise Unauthenticated("this account is disabled")
        return Principal(
            "user",
            found.organisation_id,
            found.organisation_type,
            found.roles,
            user_id=found.user_id,
        )

    # -- node API keys --------------------------------------------------------------------
    def create_api_key(self, p: Principal | None, org_id: int, data: ApiKeyIn) -> ApiKeyOut:
        if p is not None:
            perm.may_manage_org(p, org_id)
        key = new_secret(API_KEY_PREFIX)
        with self.ctx.uow.write() as dal:
            _org(dal, org_id)
            row = dal.add(
                Token(
                    kind=API_KEY,
                    token_hash=secret_hash(key),
                    organisation_id=org_id,
                    name=data.name,
                    created_at=self.ctx.clock.now(),
                )
            )
            dal.audit(actor_of(p), "apikey.create", "api_key", row.id, {"name": data.name})
            return key_out(row, key)

    def list_api_keys(self, p: Principal | None, org_id: int) -> list[ApiKeyOut]:
        if p is not None:
            perm.may_manage_org(p, org_id)
        with self.ctx.uow.read() as dal:
            _org(dal, org_id)
            return [key_out(t) for t in dal.list_api_keys(org_id)]

    def revoke_api_key(self, p: Principal | None, key_id: int) -> ApiKeyOut:
        with self.ctx.uow.write() as dal:
            row = dal.get_token(key_id)
            if row is None or row.kind != API_KEY:
                raise NotFound(f"API key {key_id} does not exist")
            if p is not None:
                perm.may_manage_org(p, row.organisation_id)
            if row.revoked_at is not None:
                raise Conflict(f"API key {key_id} is already revoked")
            row.revoked_at = self.ctx.clock.now()
            dal.audit(actor_of(p), "apikey.revoke", "api_key", row.id, {})
            return key_out(row)
