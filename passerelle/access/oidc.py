"""OpenID Connect login (authorization code flow with PKCE and nonce) via authlib.

Configured by oidc_issuer, oidc_client_id, oidc_client_secret and oidc_redirect_url; works with
any standard issuer (Pro Santé Connect, a Keycloak realm). Pending logins (state -> nonce and
PKCE verifier) are kept in this process for 10 minutes: run one worker, or put a shared store
behind `PendingLogins` for several. The ID token's signature (issuer JWKS), issuer, audience,
expiry and nonce are checked before the subject is trusted. Secrets are never logged.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from passerelle.access.errors import Invalid, NotFound, Unauthenticated
from passerelle.config import Settings

PENDING_SECONDS = 600


@dataclass(frozen=True)
class Pending:
    nonce: str
    verifier: str
    expires: float


class PendingLogins:
    def __init__(self) -> None:
        self._items: dict[str, Pending] = {}
        self._lock = threading.Lock()

    def put(self, state: str, pending: Pending) -> None:
        with self._lock:
            now = time.monotonic()
            self._items = {k: v for k, v in self._items.items() if v.expires > now}
            self._items[state] = pending

    def pop(self, state: str) -> Pending | None:
        with self._lock:
            p = self._items.pop(state, None)
        return p if p is not None and p.expires > time.monotonic() else None


class OidcClient:
    def __init__(self, settings: Settings) -> None:
        if not settings.oidc_issuer or not settings.oidc_client_id:
            raise NotFound("OpenID Connect login is not configured on this platform")
        self.s = settings
        self.pending = PendingLogins()
        self._meta: dict[str, Any] | None = None

    def _client(self) -> Any:
        from authlib.integrations.httpx_client import OAuth2Client

        return OAuth2Client(
            client_id=self.s.oidc_client_id,
            client_secret=self.s.oidc_client_secret or None,
            scope=self.s.oidc_scopes,
            redirect_uri=self.s.oidc_redirect_url,
            code_challenge_method="S256",
            timeout=10,
        )

    def metadata(self) -> dict[str, Any]:
        if self._meta is None:
            url = self.s.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                resp = httpx.get(url, timeout=10)
                resp.raise_for_status()
            except httpx.HTTPError:
                raise Unauthenticated("the identity provider cannot be reached") from None
            self._meta = resp.json()
        return self._meta

    def authorization_url(self) -> str:
        meta = self.metadata()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        with self._client() as client:
            url, _ = client.create_authorization_url(
                meta["authorization_endpoint"], state=state, nonce=nonce, code_verifier=verifier
            )
        self.pending.put(state, Pending(nonce, verifier, time.monotonic() + PENDING_SECONDS))
        return url

    def callback(self, code: str, state: str) -> dict[str, Any]:
        """The verified ID token claims of a completed login."""
        pending = self.pending.pop(state)
        if pending is None:
            raise Invalid("state: unknown or expired login attempt; start again")
        meta = self.metadata()
        try:
            with self._client() as client:
                token = client.fetch_token(
                    meta["token_endpoint"], code=code, code_verifier=pending.verifier
                )
            jwks = httpx.get(meta["jwks_uri"], timeout=10).json()
        except Exception:
            raise Unauthenticated("the identity provider refused the login") from None
        id_token = token.get("id_token")
        if not id_token:
            raise Unauthenticated("the identity provider returned no ID token")
        try:
            decoded = jwt.decode(id_token, KeySet.import_key_set(jwks))
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": meta.get("issuer", self.s.oidc_issuer)},
                aud={"essential": True, "value": self.s.oidc_client_id},
                sub={"essential": True},
                exp={"essential": True},
                nonce={"essential": True, "value": pending.nonce},
            ).validate(decoded.claims)
        except (JoseError, ValueError):
            raise Unauthenticated("the ID token could not be verified") from None
        return dict(decoded.claims)
