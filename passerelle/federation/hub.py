"""The hub: sign one envelope per node, fan out concurrently, verify, merge what was released.

Each node gets its own envelope (named for it, with its own nonce) and a deadline
(`timeout_seconds`, retries included). A POST is retried (at most `retries` times, with a short
backoff) only when the connection was refused or could not be opened, i.e. when the node
cannot have received it; a node that received an envelope has used its nonce, so resending it
would be a replay. Health checks (GET) are retried on any transport error. A node that is
down, slow, refuses, or answers with a result that does not verify is named with the reason and
the answer is flagged partial; the merge uses only verified, released results.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.request import getproxies

import httpx
import orjson
from fastapi import FastAPI, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from passerelle.federation.config import HubConfig, NodeEntry
from passerelle.federation.envelope import (
    canonical,
    envelope_hash,
    new_envelope,
    sign_envelope,
    verify_result,
)
from passerelle.federation.errors import BadSignature, Refused
from passerelle.federation.http import Answer, ConnectFailed, Connections, TransportFailed
from passerelle.federation.keys import TrustList
from passerelle.federation.merge import merge_tables
from passerelle.federation.wire import result_from_wire

log = logging.getLogger("passerelle.federation.hub")

OK, REFUSED, TIMEOUT, UNREACHABLE, INVALID, ERROR = (
    "ok",
    "refused",
    "timeout",
    "unreachable",
    "invalid",
    "error",
)

# Idle pooled connections are dropped after this many seconds, well before any server's
# keep-alive timeout (uvicorn's default 5 s; `passerelle serve` sets 30 s).
KEEPALIVE_EXPIRY = 2.0

# Which nodes approved a project: the single window knows; until it is wired in, every node
# the request names (or every configured node) is asked, and each node checks its own register.
SiteSelector = Callable[[str], Sequence[str] | None]


@dataclass
class SiteAnswer:
    site: str
    status: str
    reason: str = ""
    seconds: float = 0.0
    payload: dict[str, Any] | None = None
    attempts: int = 1

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "site": self.site,
            "status": self.status,
            "seconds": round(self.seconds, 6),
            "attempts": self.attempts,
        }
        if self.reason:
            out["reason"] = self.reason
        if self.payload is not None:
            p = self.payload
            out.update(
                result=p["result"],
                disclosure=p.get("disclosure"),
                dp=p.get("dp"),
                study_seconds=p.get("study_seconds"),
                study_cpu_seconds=p.get("study_cpu_seconds"),
                envelope_sha256=p.get("envelope_sha256"),
                node_key_id=p.get("node_key_id"),
            )
        return out


class HubService:
    def __init__(
        self,
        config: HubConfig,
        *,
        transports: dict[str, httpx.AsyncBaseTransport] | None = None,
        select_sites: SiteSelector | None = None,
    ) -> None:
        self.config = config
        self.trust: TrustList = config.trusted_nodes
        self.select_sites = select_sites
        self._transports = transports or {}
        self._clients: dict[str, httpx.AsyncClient] = {}
        # envelopes go through the lean client (same keep-alive expiry as below)
        self._connections = Connections(
            connect_timeout=config.connect_timeout_seconds, keepalive_expiry=KEEPALIVE_EXPIRY
        )
        self._direct: dict[str, bool] = {}

    def _client(self, node: NodeEntry) -> httpx.AsyncClient:
        key = node.name if node.name in self._transports else ""
        client = self._clients.get(key)
        if client is None:
            timeout = httpx.Timeout(
                self.config.timeout_seconds, connect=self.config.connect_timeout_seconds
            )
            # An idle pooled connection is dropped well before any server's keep-alive timeout
            # (uvicorn: 5 s) so that the hub never writes an envelope onto a socket the node
            # is closing: that race reads as a transport error and cannot be retried, the
            # node may already hold the envelope's nonce.
            limits = httpx.Limits(
                max_connections=200,
                max_keepalive_connections=100,
                keepalive_expiry=KEEPALIVE_EXPIRY,
            )
            client = httpx.AsyncClient(
                timeout=timeout, limits=limits, transport=self._transports.get(node.name)
            )
            self._clients[key] = client
        return client

    def _is_direct(self, node: NodeEntry) -> bool:
        """Envelopes to this node go through `Connections`: not an in-process transport, and
        no proxy in the environment for its scheme (httpx honours those, so it keeps them)."""
        direct = self._direct.get(node.name)
        if direct is None:
            proxies = getproxies()
            scheme = node.url.split(":", 1)[0].lower()
            direct = (
                node.name not in self._transports
                and scheme in ("http", "https")
                and not (proxies.get(scheme) or proxies.get("all"))
            )
            self._direct[node.name] = direct
        return direct

    async def aclose(self) -> None:
        for c in self._clients.values():
            await c.aclose()
        self._clients.clear()
        await self._connections.aclose()

    # -- choosing nodes -----------------------------------------------------------------------
    def _targets(
        self, project_id: str, sites: Sequence[str] | None
    ) -> tuple[list[NodeEntry], list[SiteAnswer]]:
        names = list(sites) if sites else None
        if names is None and self.select_sites is not None:
            chosen = self.select_sites(project_id)
            names = list(chosen) if chosen is not None else None
        if names is None:
            return list(self.config.nodes), []
        unknown = [
            SiteAnswer(n, REFUSED, "not a node this hub knows")
            for n in names
            if self.config.node(n) is None
        ]
        return [n for n in self.config.nodes if n.name in names], unknown

    # -- one node -----------------------------------------------------------------------------
    async def _post(
        self, node: NodeEntry, path: str, kind: str, fields: dict[str, Any]
    ) -> SiteAnswer:
        env = new_envelope(
            self.config.key,
            kind=kind,
            node=node.name,
            ttl_seconds=self.config.envelope_seconds,
            **fields,
        )
        signed = sign_envelope(self.config.key, env)
        body = canonical(signed)
        expected = envelope_hash(signed["envelope"])
        started = time.perf_counter()
        attempts = 0

        direct = self._is_direct(node)

        async def attempt() -> Answer | httpx.Response:
            nonlocal attempts
            for i in range(self.config.retries + 1):
                attempts += 1
                try:
                    if direct:
                        return await self._connections.post(node.url + path, body)
                    return await self._client(node).post(
                        node.url + path, content=body, headers={"content-type": "application/json"}
                    )
                except (ConnectFailed, httpx.ConnectError, httpx.ConnectTimeout):
                    if i == self.config.retries:
                        raise
                    await asyncio.sleep(0.05 * 2**i)
            raise AssertionError("unreachable")

        def answer(
            status: str, reason: str = "", payload: dict[str, Any] | None = None
        ) -> SiteAnswer:
            return SiteAnswer(
                node.name, status, reason, time.perf_counter() - started, payload, attempts
            )

        try:
            resp = await asyncio.wait_for(attempt(), self.config.timeout_seconds)
        except (TimeoutError, httpx.TimeoutException):
            return answer(TIMEOUT, f"no answer within {self.config.timeout_seconds:g} s")
        except (ConnectFailed, httpx.ConnectError, httpx.ConnectTimeout):
            return answer(UNREACHABLE, "connection refused or failed")
        except TransportFailed as exc:
            return answer(UNREACHABLE, str(exc))
        except httpx.TransportError as exc:
            return answer(UNREACHABLE, f"transport error ({type(exc).__name__})")
        try:
            data = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            return answer(ERROR, f"HTTP {resp.status_code} with a body that is not JSON")
        if resp.status_code != 200:
            reason = data.get("reason") if isinstance(data, dict) else None
            code = data.get("error") if isinstance(data, dict) else None
            status = REFUSED if 400 <= resp.status_code < 500 else ERROR
            return answer(status, f"{code}: {reason}" if code else f"HTTP {resp.status_code}")
        try:
            payload = verify_result(data, self.trust, expected)
            key = self.trust.get(payload["node_key_id"])
            if key is None or key.name != node.name or payload.get("node") != node.name:
                raise BadSignature("result signed by another node's key")
            if payload.get("kind") != kind:
                raise BadSignature("result of another kind of request")
            result_from_wire(payload["result"])  # must parse
        except BadSignature as exc:
            return answer(INVALID, str(exc))
        except (KeyError, TypeError, ValueError) as exc:
            return answer(INVALID, f"malformed result ({type(exc).__name__})")
        return answer(OK, payload=payload)

    # -- fan-out ------------------------------------------------------------------------------
    async def _fan_out(
        self, kind: str, path: str, fields: dict[str, Any], sites: Sequence[str] | None
    ) -> dict[str, Any]:
        started = time.perf_counter()
        targets, unknown = self._targets(fields["project_id"], sites)
        answers = (
            list(await asyncio.gather(*(self._post(n, path, kind, fields) for n in targets)))
            + unknown
        )
        ok = [a for a in answers if a.status == OK]
        merged_input = []
        for a in ok:
            p = a.payload or {}
            disc = p.get("disclosure") or {}
            dp = p.get("dp") or {}
            merged_input.append(
                (
                    a.site,
                    result_from_wire(p["result"]).tables,
                    int(disc.get("min_cell", 1)),
                    int(disc.get("rounding", 1)),
                    dp.get("per_cell_sd"),
                )
            )
        merged = merge_tables(merged_input) if merged_input else []
        missing = [
            {"site": a.site, "status": a.status, "reason": a.reason}
            for a in answers
            if a.status != OK
        ]
        out: dict[str, Any] = {
            "kind": kind,
            "study": fields["study"].get("study") if isinstance(fields["study"], dict) else None,
            "partial": bool(missing) or not ok,
            "missing": missing,
            "sites": [a.to_dict() for a in answers],
            "merged": {"sites": [a.site for a in ok], "tables": [m.to_dict() for m in merged]},
            "elapsed_seconds": round(time.perf_counter() - started, 6),
        }
        if any((a.payload or {}).get("dp") for a in ok):
            sds = [((a.payload or {}).get("dp") or {}).get("per_cell_sd") for a in ok]
            out["dp"] = {
                "per_site": {a.site: (a.payload or {}).get("dp") for a in ok},
                "combined_per_cell_sd": sum((s or 0.0) ** 2 for s in sds) ** 0.5,
                "note": "independent noise per site: variances add",
            }
        return out

    async def run_study(
        self,
        study: dict[str, Any],
        *,
        project_id: str,
        purpose: str,
        request_id: str = "",
        output_type: str = "aggregates",
        mode: str = "exact",
        sites: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        fields = {
            "mode": mode,
            "study": study,
            "project_id": project_id,
            "request_id": request_id,
            "purpose": purpose,
            "output_type": output_type,
        }
        return await self._fan_out("study", "/node/v1/studies", fields, sites)

    async def feasibility(
        self, study: dict[str, Any], *, applicant: str, sites: Sequence[str] | None = None
    ) -> dict[str, Any]:
        fields = {
            "study": study,
            "project_id": applicant,
            "request_id": "",
            "purpose": "feasibility",
            "output_type": "aggregates",
        }
        return await self._fan_out("feasibility", "/node/v1/feasibility", fields, sites)

    async def nodes_health(self) -> list[dict[str, Any]]:
        async def one(node: NodeEntry) -> dict[str, Any]:
            for i in range(self.config.retries + 1):
                try:
                    r = await self._client(node).get(
                        node.url + "/node/v1/health", timeout=self.config.connect_timeout_seconds
                    )
                    return {
                        "site": node.name,
                        "status": OK if r.status_code == 200 else ERROR,
                        "health": r.json(),
                    }
                except httpx.TransportError as exc:
                    if i == self.config.retries:
                        return {
                            "site": node.name,
                            "status": UNREACHABLE,
                            "reason": type(exc).__name__,
                        }
                    await asyncio.sleep(0.05 * 2**i)
            raise AssertionError("unreachable")

        return list(await asyncio.gather(*(one(n) for n in self.config.nodes)))


class StudyRequest(BaseModel):
    study: dict[str, Any] = Field(description="The study spec (data, never code).")
    project_id: str = Field(min_length=1, max_length=120)
    purpose: str = Field(min_length=1, max_length=60)
    request_id: str = Field("", max_length=120)
    output_type: str = Field("aggregates", max_length=60)
    mode: Literal["exact", "dp"] = Field("exact", description="dp: differentially private release.")
    sites: list[str] | None = Field(
        None, description="Nodes to ask (default: those that approved)."
    )


class FeasibilityRequest(BaseModel):
    study: dict[str, Any]
    applicant: str = Field(min_length=1, max_length=120)
    sites: list[str] | None = None


def create_hub_app(service: HubService) -> FastAPI:
    import contextlib
    from collections.abc import AsyncIterator

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await service.aclose()

    app = FastAPI(title=f"Passerelle hub {service.config.name}", version="1", lifespan=lifespan)

    def check_token(authorization: str | None) -> None:
        token = service.config.api_token
        if not token:
            return
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Refused("missing or wrong bearer token", code="unauthorized", status=401)

    @app.exception_handler(Refused)
    async def refused(_request: Request, exc: Refused) -> Response:
        return Response(
            canonical({"error": exc.code, "reason": str(exc)}),
            exc.http_status,
            media_type="application/json",
        )

    @app.get("/hub/v1/health")
    async def health() -> Response:
        return Response(
            canonical(
                {"hub": service.config.name, "key_id": service.config.key.key_id, "status": OK}
            ),
            media_type="application/json",
        )

    @app.get("/hub/v1/nodes")
    async def nodes(authorization: str | None = Header(None)) -> Response:
        check_token(authorization)
        return Response(canonical(await service.nodes_health()), media_type="application/json")

    @app.post("/hub/v1/studies")
    async def studies(req: StudyRequest, authorization: str | None = Header(None)) -> Response:
        check_token(authorization)
        out = await service.run_study(
            req.study,
            project_id=req.project_id,
            purpose=req.purpose,
            request_id=req.request_id,
            output_type=req.output_type,
            mode=req.mode,
            sites=req.sites,
        )
        return Response(canonical(out), media_type="application/json")

    @app.post("/hub/v1/feasibility")
    async def feasibility(
        req: FeasibilityRequest, authorization: str | None = Header(None)
    ) -> Response:
        check_token(authorization)
        out = await service.feasibility(req.study, applicant=req.applicant, sites=req.sites)
        return Response(canonical(out), media_type="application/json")

    return app
