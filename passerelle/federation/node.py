"""The node service: verify, check its own records, run, protect (always), sign.

Order of checks for every envelope: the hub's signature against this node's trust list; that it
is meant for this node and this endpoint; its freshness (issued not in the future, not expired,
lifetime within the node's maximum); its nonce never seen before (persisted); then, for a
study, an active approval in the node's own register for that project, purpose and output
type, and the node's policy allowing that purpose and output type. Only then is the study
parsed (data, never code), run on the node's engine, passed through the node's disclosure
policy, and signed. Refusals are JSON `{error, reason, node}` with a 4xx status; they never
carry a patient value.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from passerelle.cdm.stores import open_store, store_class
from passerelle.cdm.stores.base import Store
from passerelle.cdm.url import parse_store_url
from passerelle.errors import PasserelleError, StoreUnavailable, Unsupported
from passerelle.federation.config import NodeConfig
from passerelle.federation.envelope import Envelope, canonical, sign_result, utcnow, verify_envelope
from passerelle.federation.errors import Refused
from passerelle.federation.feasibility import feasibility_spec, ledger_for
from passerelle.federation.register import NodeRegister
from passerelle.federation.study import (
    Disclosure,
    StudyLanguage,
    capabilities,
    load_disclosure,
    study_language,
)
from passerelle.federation.wire import result_to_wire

log = logging.getLogger("passerelle.federation.node")

# A study spec is a few kilobytes; anything much larger is refused before parsing.
MAX_BODY_BYTES = 1_000_000

# Through the federation a node releases aggregates only: a pseudonymized extract is produced
# by `passerelle extract` under its own checks, never sent through this service.
FEDERATED_OUTPUT_TYPES = ("aggregates",)

# The single window's output types (access.enums.OutputType) in the privacy policy's words.
POLICY_OUTPUT_TYPE = {
    "aggregates": "aggregate",
    "pseudonymized_extract": "extract",
    "synthetic": "synthetic",
    "feasibility": "feasibility",
}


class NodeService:
    def __init__(
        self,
        config: NodeConfig,
        *,
        language: StudyLanguage | None = None,
        disclosure: Disclosure | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.config = config
        self.register = NodeRegister(config.database)
        self.language = language or study_language()
        self.disclosure = disclosure or load_disclosure(config.policy)
        self.feasibility, self.project_dp = ledger_for(self.disclosure, self.register.engine)
        self.clock = clock
        self._store: Store | None = None
        self._lock = threading.Lock()
        # the engine's name without connecting: /health must not wait for a running study
        self.engine = store_class(parse_store_url(config.store).scheme).engine

    @property
    def name(self) -> str:
        return self.config.name

    def store(self) -> Store:
        """The open store; called under the study lock (and once at start-up)."""
        if self._store is None:
            self._store = open_store(self.config.store)
        return self._store

    def _reset_store(self) -> None:
        """After an unexpected engine error, reconnect on the next study (a dropped
        PostgreSQL connection, a Spark session that died)."""
        store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except Exception as exc:
                log.warning("closing the store failed: %s", type(exc).__name__)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        self.register.close()

    def health(self) -> dict[str, Any]:
        return {
            "node": self.name,
            "key_id": self.config.key.key_id,
            "status": "ok",
            "engine": self.engine,
            "disclosure": self.disclosure.describe(),
            **capabilities(self.language, self.disclosure),
            "feasibility": self.feasibility.source,
        }

    # -- checks -------------------------------------------------------------------------------
    def _check_fresh(self, env: Envelope) -> None:
        now = self.clock()
        try:
            issued, expires = env.issued(), env.expires()
        except ValueError:
            raise Refused(
                "envelope timestamps are not ISO 8601 UTC", code="malformed", status=400
            ) from None
        skew = dt.timedelta(seconds=self.config.clock_skew_seconds)
        if issued > now + skew:
            raise Refused("envelope issued in the future", code="not_yet_valid", status=401)
        if expires <= now:
            raise Refused("envelope expired", code="expired", status=401)
        if (expires - issued).total_seconds() > self.config.max_envelope_seconds:
            raise Refused(
                f"envelope lifetime exceeds this node's maximum of {self.config.max_envelope_seconds} s",
                code="lifetime_too_long",
                status=401,
            )
        if not self.register.use_nonce(env.nonce, expires, now):
            raise Refused("envelope nonce already used (replay)", code="replayed", status=409)

    def _check_approved(self, env: Envelope) -> None:
        d = self.disclosure
        if env.output_type not in FEDERATED_OUTPUT_TYPES:
            raise Refused(
                f"output type {env.output_type!r} is not released through federation "
                f"(only {', '.join(FEDERATED_OUTPUT_TYPES)})",
                code="forbidden_output_type",
            )
        policy_type = POLICY_OUTPUT_TYPE.get(env.output_type, env.output_type)
        if d.output_types is not None and not {env.output_type, policy_type} & set(d.output_types):
            raise Refused(
                f"this node's policy does not allow output type {env.output_type!r}",
                code="forbidden_output_type",
            )
        if d.purposes is not None and env.purpose not in d.purposes:
            raise Refused(
                f"this node's policy does not allow purpose {env.purpose!r}",
                code="forbidden_purpose",
            )
        # the register's one approval rule: active, for this purpose and this output type
        self.register.check_approved(env.project_id, env.purpose, (env.output_type,), self.clock())

    # -- handling -----------------------------------------------------------------------------
    def handle(self, signed: Any, kind: str) -> dict[str, Any]:
        env, env_hash = verify_envelope(signed, self.config.trusted_hubs)
        try:
            if env.node != self.name:
                raise Refused(f"envelope is meant for node {env.node!r}", code="wrong_node")
            if env.kind != kind:
                raise Refused(
                    f"a {env.kind} envelope sent to the {kind} endpoint",
                    code="wrong_kind",
                    status=400,
                )
            self._check_fresh(env)
            if kind == "study":
                self._check_approved(env)
            payload = self._run(env, kind)
        except Refused as exc:
            self.register.log(kind, env.project_id, env.request_id, env_hash, exc.code)
            raise
        self.register.log(kind, env.project_id, env.request_id, env_hash, "released")
        return sign_result(self.config.key, {**payload, "kind": kind, "envelope_sha256": env_hash})

    def _execute(self, model: Any) -> tuple[Any, float, float]:
        """The raw result, the study's wall seconds and the node process's CPU seconds
        meanwhile (the engine's threads included)."""
        with self._lock:
            started, cpu = time.perf_counter(), time.process_time()
            try:
                raw = self.language.run(self.store(), model)
            except Refused:
                raise
            except StoreUnavailable as exc:  # names the store (password redacted), no data
                self._reset_store()
                raise Refused(str(exc), code="store_unavailable", status=503) from None
            except PasserelleError as exc:  # ours: names a capability or a field, never a value
                status = exc.http_status if 400 <= exc.http_status < 500 else 500
                code = "unsupported" if isinstance(exc, Unsupported) else "study_failed"
                raise Refused(
                    f"the study cannot run on this node: {exc}", code=code, status=status
                ) from None
            except Exception as exc:  # never echo engine text: it may quote data
                log.error("study failed on node %s: %s", self.name, type(exc).__name__)
                self._reset_store()
                raise Refused(
                    "the study failed on this node", code="study_failed", status=500
                ) from None
        return raw, time.perf_counter() - started, time.process_time() - cpu

    def _run(self, env: Envelope, kind: str) -> dict[str, Any]:
        dp = None
        if kind == "study":
            model = self.language.parse(env.study)
            raw, study_seconds, study_cpu = self._execute(model)
            started = time.perf_counter()
            # The node's policy, always, before anything leaves: exact (suppression and
            # rounding) or, in DP mode, noise charged to the project's budget, then the same rules.
            if self.project_dp.mode_of(env) == "dp":
                released, dp = self.project_dp.release(env, raw)
            else:
                released = self.disclosure.protect(raw, self.disclosure.policy)
        else:
            model = self.language.parse(feasibility_spec(env.study))
            timing = {"study": 0.0, "cpu": 0.0}

            def true_count() -> int:
                raw, timing["study"], timing["cpu"] = self._execute(model)
                rows = raw.tables[0].rows
                return int(rows[0][-1]) if rows and rows[0][-1] is not None else 0

            started = time.perf_counter()
            released, dp = self.feasibility.release(env, true_count)
            study_seconds, study_cpu = timing["study"], timing["cpu"]
        return {
            "project_id": env.project_id,
            "request_id": env.request_id,
            "result": result_to_wire(released),
            "disclosure": self.disclosure.describe(),
            "dp": dp,
            "study_seconds": round(study_seconds, 6),
            "study_cpu_seconds": round(study_cpu, 6),
            "protect_seconds": round(time.perf_counter() - started, 6),
        }


def _json(data: Any, status: int = 200) -> Response:
    return Response(content=canonical(data), status_code=status, media_type="application/json")


def create_node_app(service: NodeService) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        service.close()

    app = FastAPI(title=f"Passerelle node {service.name}", version="1", lifespan=lifespan)

    @app.exception_handler(Refused)
    async def refused(_request: Request, exc: Refused) -> Response:
        return _json({"error": exc.code, "reason": str(exc), "node": service.name}, exc.http_status)

    async def body_of(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise Refused("envelope too large", code="too_large", status=413)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise Refused("envelope too large", code="too_large", status=413)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise Refused("body is not JSON", code="malformed", status=400) from None

    @app.get("/node/v1/health")
    def health() -> Response:
        return _json(service.health())

    @app.post("/node/v1/studies")
    async def studies(request: Request) -> Response:
        body = await body_of(request)
        return _json(await run_in_threadpool(service.handle, body, "study"))

    @app.post("/node/v1/feasibility")
    async def feasibility(request: Request) -> Response:
        body = await body_of(request)
        return _json(await run_in_threadpool(service.handle, body, "feasibility"))

    return app
