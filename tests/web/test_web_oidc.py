"""OpenID Connect login against a local fake issuer served on 127.0.0.1 (real HTTP):
discovery, authorization redirect with state/nonce/PKCE, code exchange, ID token checks."""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import socket
import threading
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from joserfc import jwt
from joserfc.jwk import RSAKey

from passerelle.access.accounts import Accounts
from passerelle.access.enums import OrgType, Role
from passerelle.access.schemas import OrgIn, UserIn

CLIENT_ID, CLIENT_SECRET = "passerelle-hub", "s3cret-never-logged"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeIssuer:
    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
        self.signing_key = self.key  # a test swaps it to forge a token
        self.codes: dict[str, dict] = {}
        self.subject, self.email = "psc-0001", "dr.house@chu.example"
        app = FastAPI()

        @app.get("/.well-known/openid-configuration")
        def discovery():
            return {
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "jwks_uri": f"{self.url}/jwks",
            }

        @app.get("/jwks")
        def jwks():
            return {"keys": [self.key.as_dict(private=False)]}

        @app.get("/authorize")
        def authorize(request: Request):
            q = request.query_params
            code = secrets.token_urlsafe(16)
            self.codes[code] = {
                "nonce": q["nonce"],
                "challenge": q["code_challenge"],
                "client_id": q["client_id"],
            }
            target = f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}"
            return RedirectResponse(target, status_code=302)

        @app.post("/token")
        async def token(request: Request):
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            code, code_verifier = form.get("code", ""), form.get("code_verifier", "")
            auth = request.headers.get("authorization", "")
            expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            grant = self.codes.pop(code, None)
            digest = hashlib.sha256(code_verifier.encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if grant is None or auth != f"Basic {expected}" or challenge != grant["challenge"]:
                return {"error": "invalid_grant"}
            now = int(time.time())
            claims = {
                "iss": self.url,
                "aud": CLIENT_ID,
                "sub": self.subject,
                "email": self.email,
                "email_verified": True,
                "nonce": grant["nonce"],
                "iat": now,
                "exp": now + 300,
            }
            id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, self.signing_key)
            return {"access_token": "at", "token_type": "Bearer", "id_token": id_token}

        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def issuer():
    with FakeIssuer() as fake:
        yield fake


@pytest.fixture
def oidc_client(issuer, settings, clock, app_db_url):
    if not app_db_url.startswith("sqlite"):
        pytest.skip("the OIDC flow does not depend on the database")
    from fastapi.testclient import TestClient

    from passerelle.web import create_app

    s = settings.model_copy(
        update={
            "oidc_issuer": issuer.url,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": CLIENT_SECRET,
            "oidc_redirect_url": "http://testserver/api/v1/auth/oidc/callback",
        }
    )
    app = create_app(s)
    ctx = app.state.services.ctx
    acc = Accounts(ctx)
    org = acc.create_org(None, OrgIn(name="CHU", type=OrgType.HOSPITAL))
    user = acc.create_user(
        None, org.id, UserIn(email=issuer.email, name="H", roles=[Role.REVIEWER])
    )
    with TestClient(app) as c:
        yield c, acc, user


def _login(client):
    start = client.get("/api/v1/auth/oidc/login", follow_redirects=False)
    assert start.status_code == 302
    location = start.headers["location"]
    q = parse_qs(urlsplit(location).query)
    assert q["code_challenge_method"] == ["S256"] and q["nonce"] and q["state"]
    back = httpx.get(location, follow_redirects=False)
    assert back.status_code == 302
    callback = urlsplit(back.headers["location"])
    return callback.path + "?" + callback.query


def test_oidc_login_links_the_account_and_gives_a_token(oidc_client, caplog):
    caplog.set_level(logging.DEBUG)
    client, acc, user = oidc_client
    callback = _login(client)
    r = client.get(callback)
    assert r.status_code == 200, r.text
    principal = acc.authenticate(r.json()["token"])
    assert principal.user_id == user.id and principal.roles == {Role.REVIEWER}
    replay = client.get(callback)
    assert replay.status_code == 422 and "state" in replay.json()["error"]["message"]
    assert CLIENT_SECRET not in caplog.text


def test_a_token_signed_by_another_key_is_refused(oidc_client, issuer):
    client, _, _ = oidc_client
    issuer.signing_key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    r = client.get(_login(client))
    assert r.status_code == 401 and "could not be verified" in r.json()["error"]["message"]


def test_an_unknown_identity_is_forbidden(oidc_client, issuer):
    client, _, _ = oidc_client
    issuer.subject, issuer.email = "psc-9999", "stranger@elsewhere.example"
    r = client.get(_login(client))
    assert r.status_code == 403
