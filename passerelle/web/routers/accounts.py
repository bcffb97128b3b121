"""Logins, organisations, users and node API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, status
from fastapi.security import HTTPAuthorizationCredentials

from passerelle.access import permissions as perm
from passerelle.access.errors import Unauthenticated
from passerelle.access.schemas import (
    ApiKeyIn,
    ApiKeyOut,
    LoginIn,
    Me,
    OrgIn,
    OrgOut,
    OrgPatch,
    Page,
    TokenOut,
    UserIn,
    UserOut,
    UserPatch,
)
from passerelle.web.deps import Caller, Pages, Svc, bearer
from passerelle.web.errors import ERROR_RESPONSES

router = APIRouter(responses=ERROR_RESPONSES)
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post("/auth/login", tags=["auth"], summary="Log in with e-mail and password")
def login(svc: Svc, body: LoginIn) -> TokenOut:
    return svc.accounts.login(body.email, body.password)


@router.post(
    "/auth/logout",
    tags=["auth"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke the bearer token used for this call",
)
def logout(
    svc: Svc, p: Caller, cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    perm.require_user(p)  # a node key is revoked by its organisation's admin instead
    if cred is None:
        raise Unauthenticated("log out with the bearer token to revoke")
    svc.accounts.logout(cred.credentials)


@router.get("/auth/me", tags=["auth"], summary="Who the caller is")
def me(p: Caller) -> Me:
    return Me(
        kind=p.kind,
        user_id=p.user_id,
        organisation_id=p.organisation_id,
        organisation_type=p.organisation_type,
        roles=sorted(p.roles),
    )


@router.get("/organisations", tags=["organisations"], summary="List organisations")
def list_orgs(svc: Svc, p: Caller, page: Pages) -> Page[OrgOut]:
    return svc.accounts.list_orgs(page.offset, page.limit)


@router.post(
    "/organisations",
    tags=["organisations"],
    status_code=201,
    summary="Create an organisation (admin)",
)
def create_org(svc: Svc, p: Caller, body: OrgIn) -> OrgOut:
    return svc.accounts.create_org(p, body)


@router.get("/organisations/{org_id}", tags=["organisations"], summary="One organisation")
def get_org(svc: Svc, p: Caller, org_id: Id) -> OrgOut:
    return svc.accounts.get_org(org_id)


@router.patch(
    "/organisations/{org_id}",
    tags=["organisations"],
    summary="Change an organisation's review deadline (its admin or steward)",
)
def update_org(svc: Svc, p: Caller, org_id: Id, body: OrgPatch) -> OrgOut:
    return svc.accounts.update_org(p, org_id, body)


@router.get(
    "/organisations/{org_id}/users", tags=["users"], summary="Users of an organisation (its admin)"
)
def list_users(svc: Svc, p: Caller, org_id: Id, page: Pages) -> Page[UserOut]:
    return svc.accounts.list_users(p, org_id, page.offset, page.limit)


@router.post(
    "/organisations/{org_id}/users",
    tags=["users"],
    status_code=201,
    summary="Create a user in an organisation (its admin)",
)
def create_user(svc: Svc, p: Caller, org_id: Id, body: UserIn) -> UserOut:
    return svc.accounts.create_user(p, org_id, body)


@router.get("/users/{user_id}", tags=["users"], summary="One user (the user or their admin)")
def get_user(svc: Svc, p: Caller, user_id: Id) -> UserOut:
    return svc.accounts.get_user(p, user_id)


@router.patch("/users/{user_id}", tags=["users"], summary="Change a user (their admin)")
def update_user(svc: Svc, p: Caller, user_id: Id, body: UserPatch) -> UserOut:
    return svc.accounts.update_user(p, user_id, body)


@router.get(
    "/organisations/{org_id}/api-keys",
    tags=["api keys"],
    summary="Node API keys of an organisation (its admin)",
)
def list_keys(svc: Svc, p: Caller, org_id: Id) -> list[ApiKeyOut]:
    return svc.accounts.list_api_keys(p, org_id)


@router.post(
    "/organisations/{org_id}/api-keys",
    tags=["api keys"],
    status_code=201,
    summary="Create a node API key; the key is shown once",
)
def create_key(svc: Svc, p: Caller, org_id: Id, body: ApiKeyIn) -> ApiKeyOut:
    return svc.accounts.create_api_key(p, org_id, body)


@router.delete("/api-keys/{key_id}", tags=["api keys"], summary="Revoke a node API key")
def revoke_key(svc: Svc, p: Caller, key_id: Id) -> ApiKeyOut:
    return svc.accounts.revoke_api_key(p, key_id)
