"""The FastAPI app factory: `create_app(settings)` gives the REST API under /api/v1.

Federation mounts it (`passerelle serve`); the HTML pages of a later issue add routers here.
"""

from __future__ import annotations

from importlib.metadata import version

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from passerelle.access.clock import Clock
from passerelle.access.context import Context
from passerelle.access.db import Database
from passerelle.access.mail import Mailer
from passerelle.config import Settings, get_settings
from passerelle.web import errors, pages
from passerelle.web.deps import Services
from passerelle.web.routers import accounts, audit, catalog, nodes, oidc, requests

API_PREFIX = "/api/v1"

DESCRIPTION = """\
One window onto hospital health data in the OMOP CDM: the catalogue, one access request for
many producers with one visible clock per decision, and a tamper-evident audit chain.

Authenticate with `Authorization: Bearer <token>` (from `POST /api/v1/auth/login`) or, for a
node, `X-API-Key: <key>`. Errors are JSON: `{"error": {"status": 403, "message": "..."}}`.
Lists are paginated with `offset` and `limit` (at most 100).
"""


class SharedReadsMiddleware:
    """ASGI middleware: the reads of one HTTP request (the caller's credentials, then what the
    endpoint reads) share one pooled connection (`Database.shared_reads`), returned when the
    response is sent. Writes keep their own transaction."""

    def __init__(self, app: ASGIApp, db: Database) -> None:
        self.app = app
        self.db = db

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self.db.shared_reads():
            await self.app(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    mailer: Mailer | None = None,
    migrate: bool = True,
) -> FastAPI:
    settings = settings or get_settings()
    db = Database.from_settings(settings)
    if migrate:
        db.upgrade()
    ctx = (
        Context(db, settings, mailer=mailer)
        if clock is None
        else Context(db, settings, clock, mailer)
    )
    app = FastAPI(
        title="Passerelle",
        version=version("passerelle"),
        description=DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.services = Services.build(ctx)
    app.add_middleware(SharedReadsMiddleware, db=db)
    errors.install(app)
    for module in (accounts, oidc, catalog, requests, audit, nodes):
        app.include_router(module.router, prefix=API_PREFIX)
    pages.install(app)  # the HTML pages and their static files (passerelle/web/pages)
    return app
