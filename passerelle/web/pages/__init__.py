"""The HTML web application: server-rendered pages over the same services as the REST API.

`install(app)` adds the pages, the static files (served by the package: no CDN) and the state
they need (the vocabulary for concept search, the observatory, the result store).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from passerelle.observatory.stats import ObservatoryService


def install(app: FastAPI) -> None:
    from passerelle.web.pages import core, manage, public, research, review
    from passerelle.web.pages.results import ResultStore
    from passerelle.web.pages.vocab import Vocabulary

    ctx = app.state.services.ctx
    app.state.vocabulary = Vocabulary(ctx.settings.default_store_url())
    app.state.observatory = ObservatoryService(ctx.db, ctx.clock)
    app.state.results = ResultStore(ctx.settings.data_dir / "results")
    app.mount("/static", StaticFiles(directory=str(core.STATIC)), name="static")
    for module in (public, research, review, manage):
        app.include_router(module.router)
