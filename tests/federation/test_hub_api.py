"""The hub's own API: bearer token, request validation (in-process ASGI, no node needed)."""

from __future__ import annotations

import asyncio

import httpx

from passerelle.federation.config import HubConfig
from passerelle.federation.hub import HubService, create_hub_app
from passerelle.federation.keys import KeyPair

SPEC = {"study": "s", "cohort": {"entry": {"condition": {"concepts": [1]}}}, "analyses": []}


def call(app, method, path, **kw):
    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
            return await c.request(method, path, **kw)

    return asyncio.run(go())


def test_the_hub_api_requires_its_token_when_one_is_set():
    app = create_hub_app(HubService(HubConfig("hub", KeyPair.generate("hub"), api_token="s3cret")))
    body = {"study": SPEC, "project_id": "p", "purpose": "research"}
    assert call(app, "POST", "/hub/v1/studies", json=body).status_code == 401
    wrong = {"authorization": "Bearer nope"}
    assert call(app, "POST", "/hub/v1/studies", json=body, headers=wrong).status_code == 401
    ok = call(app, "POST", "/hub/v1/studies", json=body, headers={"authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.json()["partial"]  # no node answered
    assert call(app, "GET", "/hub/v1/health").status_code == 200  # health is public


def test_unknown_sites_are_named_not_guessed():
    app = create_hub_app(HubService(HubConfig("hub", KeyPair.generate("hub"))))
    body = {"study": SPEC, "project_id": "p", "purpose": "research", "sites": ["nowhere"]}
    out = call(app, "POST", "/hub/v1/studies", json=body).json()
    assert out["missing"] == [
        {"site": "nowhere", "status": "refused", "reason": "not a node this hub knows"}
    ]


def test_a_malformed_request_is_a_422():
    app = create_hub_app(HubService(HubConfig("hub", KeyPair.generate("hub"))))
    assert call(app, "POST", "/hub/v1/studies", json={"study": SPEC}).status_code == 422
