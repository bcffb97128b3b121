"""The web pages' way to the federation hub: feasibility counts and approved studies.

The hub is reached over HTTP at `hub_url` (default: `public_base_url`, where
`passerelle serve --role all` runs it), with `hub_token` as its bearer token. Which node runs a
study for which producer: a node's name in the hub's configuration is its organisation's name
as a slug (`CHU Nord` -> `chu-nord`); `project_id` is `request-<id>`, the name a node records
its committee's approval under (`passerelle node sync` pulls it from the single window;
`passerelle node approve --project request-<id>` by hand as a fallback).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import httpx

from passerelle.config import Settings
from passerelle.errors import PasserelleError


class HubUnavailable(PasserelleError):
    http_status = 502


def slug(name: str) -> str:
    text = unicodedata.normalize("NFKD", name.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def project_id(request_id: int) -> str:
    return f"request-{request_id}"


class HubClient:
    def __init__(self, settings: Settings) -> None:
        self.url = settings.default_hub_url()
        self.timeout = settings.hub_timeout_seconds
        self.headers = (
            {"authorization": f"Bearer {settings.hub_token}"} if settings.hub_token else {}
        )

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            resp = httpx.post(
                self.url + path, json=body, headers=self.headers, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise HubUnavailable(
                f"the federation hub did not answer ({type(exc).__name__})"
            ) from None
        if resp.status_code != 200:
            raise HubUnavailable(f"the federation hub answered HTTP {resp.status_code}")
        return resp.json()

    def feasibility(self, spec: dict[str, Any], applicant: str) -> dict[str, Any]:
        return self._post("/hub/v1/feasibility", {"study": spec, "applicant": applicant})

    def run_study(
        self,
        spec: dict[str, Any],
        *,
        request_id: int,
        purpose: str,
        output_type: str,
        sites: list[str] | None,
    ) -> dict[str, Any]:
        body = {
            "study": spec,
            "project_id": project_id(request_id),
            "request_id": str(request_id),
            "purpose": purpose,
            "output_type": output_type,
            "sites": sites,
        }
        return self._post("/hub/v1/studies", body)
