"""Request dependencies: the services, the caller (bearer token or node API key), paging.

Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` dependency in its
thread pool, a hop that costs more than the work. Authentication reads the database and stays
a plain function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from passerelle.access.accounts import Accounts
from passerelle.access.auth import Principal
from passerelle.access.context import Context
from passerelle.access.errors import Unauthenticated
from passerelle.access.requests import Requests
from passerelle.catalog.service import Catalog


@dataclass
class Services:
    ctx: Context
    accounts: Accounts
    requests: Requests
    catalog: Catalog

    @classmethod
    def build(cls, ctx: Context) -> Services:
        return cls(ctx, Accounts(ctx), Requests(ctx), Catalog(ctx))


async def services(request: Request) -> Services:
    return request.app.state.services


bearer = HTTPBearer(auto_error=False, description="A token from POST /api/v1/auth/login")
api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="A node API key")

Svc = Annotated[Services, Depends(services)]


def optional_principal(
    svc: Svc,
    cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    key: Annotated[str | None, Depends(api_key)],
) -> Principal | None:
    secret = cred.credentials if cred is not None else key
    if not secret:
        return None
    return svc.accounts.authenticate(secret)


async def principal(p: Annotated[Principal | None, Depends(optional_principal)]) -> Principal:
    if p is None:
        raise Unauthenticated("authentication required: send Authorization: Bearer <token>")
    return p


Caller = Annotated[Principal, Depends(principal)]
MaybeCaller = Annotated[Principal | None, Depends(optional_principal)]


@dataclass(frozen=True)
class Paging:
    offset: int
    limit: int


async def paging(
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Items to skip")] = 0,
    limit: Annotated[int, Query(ge=1, le=100, description="Items per page (max 100)")] = 20,
) -> Paging:
    return Paging(offset, limit)


Pages = Annotated[Paging, Depends(paging)]
