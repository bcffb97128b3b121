"""OpenID Connect login: redirect to the issuer, then exchange the code for a Passerelle token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse

from passerelle.access.oidc import OidcClient
from passerelle.access.schemas import TokenOut
from passerelle.web.deps import Svc
from passerelle.web.errors import ERROR_RESPONSES

router = APIRouter(responses=ERROR_RESPONSES, tags=["auth"])


def _client(request: Request, svc: Svc) -> OidcClient:
    client = getattr(request.app.state, "oidc", None)
    if client is None:
        client = OidcClient(svc.ctx.settings)  # NotFound when not configured
        request.app.state.oidc = client
    return client


@router.get(
    "/auth/oidc/login",
    summary="Start an OpenID Connect login (redirects to the identity provider)",
    response_class=RedirectResponse,
    status_code=302,
)
def oidc_login(request: Request, svc: Svc) -> RedirectResponse:
    return RedirectResponse(_client(request, svc).authorization_url(), status_code=302)


@router.get("/auth/oidc/callback", summary="Complete an OpenID Connect login")
def oidc_callback(
    request: Request,
    svc: Svc,
    code: Annotated[str, Query(min_length=1, max_length=2000)],
    state: Annotated[str, Query(min_length=1, max_length=200)],
) -> TokenOut:
    claims = _client(request, svc).callback(code, state)
    email = claims.get("email") if claims.get("email_verified", True) else None
    return svc.accounts.login_oidc(str(claims["sub"]), email)
