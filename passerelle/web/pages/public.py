"""Public pages: home, login, language, the catalogue and the observatory."""

from __future__ import annotations

import contextlib
from datetime import date
from enum import Enum
from typing import Annotated, TypeVar

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from passerelle.access.enums import Domain, OrgType, Purpose
from passerelle.access.errors import Invalid, NotFound, TooManyAttempts, Unauthenticated
from passerelle.observatory.export import to_csv
from passerelle.observatory.stats import Filters
from passerelle.web import i18n
from passerelle.web.pages import core
from passerelle.web.pages.core import form, redirect, render, safe_next

router = APIRouter(route_class=core.HtmlRoute, include_in_schema=False)
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
PAGE_SIZE = 20
E = TypeVar("E", bound=Enum)


@router.get("/")
def home(request: Request) -> Response:
    return render(request, "home.html")


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", next=safe_next(next), error="", email="")


@router.post("/login")
async def login(request: Request) -> Response:
    f = await form(request)
    svc = core.services(request)
    t = core.translator(request)
    nxt = safe_next(f.get("next", "/"))
    email = f.get("email")
    try:
        # argon2 takes tens of milliseconds of CPU: off the event loop.
        token = await run_in_threadpool(svc.accounts.login, email, f.get("password"))
    except (Unauthenticated, TooManyAttempts) as exc:
        message = t("Wrong e-mail or password.") if isinstance(exc, Unauthenticated) else str(exc)
        return render(request, "login.html", 401, next=nxt, error=message, email=email)
    resp = redirect(nxt if nxt != "/" else "/dashboard")
    secure = request.url.scheme == "https"
    max_age = svc.ctx.settings.token_ttl_minutes * 60
    resp.set_cookie(
        core.SESSION_COOKIE,
        token.token,
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
        max_age=max_age,
    )
    return resp


@router.post("/logout")
async def logout(request: Request) -> Response:
    await form(request)
    token = request.cookies.get(core.SESSION_COOKIE)
    if token:
        with contextlib.suppress(Unauthenticated):
            core.services(request).accounts.logout(token)
    resp = redirect("/")
    resp.delete_cookie(core.SESSION_COOKIE, path="/")
    return resp


@router.get("/lang/{code}")
def switch_language(request: Request, code: str, next: str = "/") -> Response:
    resp = redirect(safe_next(next))
    if code in i18n.LANGUAGES:
        resp.set_cookie(i18n.COOKIE, code, samesite="lax", path="/", max_age=365 * 86400)
    return resp


@router.get("/dashboard")
def dashboard(request: Request) -> Response:
    me = core.require(request)
    return render(request, "dashboard.html", roles=sorted(me.principal.roles))


# -- catalogue ---------------------------------------------------------------------------------


Text = Annotated[str, Query(max_length=40)]


def _choice(cls: type[E], value: str) -> E | None:
    """An empty form field means "any"; an unknown value is a 422 like any bad field."""
    if not value:
        return None
    try:
        return cls(value)
    except ValueError:
        raise Invalid(f"{value!r} is not one of {[m.value for m in cls]}") from None


def _date(value: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{value!r} is not a date (YYYY-MM-DD)") from None


@router.get("/catalogue")
def catalogue(
    request: Request,
    q: Annotated[str, Query(max_length=200)] = "",
    producer_type: Text = "",
    domain: Text = "",
    period_from: Text = "",
    period_to: Text = "",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    return _catalogue(
        request,
        q,
        _choice(OrgType, producer_type),
        _choice(Domain, domain),
        _date(period_from),
        _date(period_to),
        page,
    )


def _catalogue(
    request: Request,
    q: str,
    producer_type: OrgType | None,
    domain: Domain | None,
    period_from: date | None,
    period_to: date | None,
    page: int,
) -> Response:
    svc = core.services(request)
    result = svc.catalog.search(
        q, producer_type, domain, period_from, period_to, (page - 1) * PAGE_SIZE, PAGE_SIZE
    )
    pages = max(1, -(-result.total // PAGE_SIZE))
    return render(
        request,
        "catalogue.html",
        result=result,
        q=q,
        producer_type=producer_type.value if producer_type else "",
        domain=domain.value if domain else "",
        period_from=period_from.isoformat() if period_from else "",
        period_to=period_to.isoformat() if period_to else "",
        page=page,
        pages=pages,
        org_types=list(OrgType),
        domains=list(Domain),
    )


@router.get("/catalogue/{dataset_id}")
def dataset_page(request: Request, dataset_id: Id) -> Response:
    svc = core.services(request)
    me = core.viewer(request)
    d = svc.catalog.get(me.principal if me else None, dataset_id)
    if not d.published and me is None:
        raise NotFound(f"dataset {dataset_id} does not exist")
    return render(request, "dataset.html", d=d)


# -- concept autocomplete ------------------------------------------------------------------------


@router.get("/ui/concepts")
def concepts(
    request: Request,
    q: Annotated[str, Query(max_length=100)] = "",
    domain: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    vocab = request.app.state.vocabulary
    found = vocab.search(q, domain if domain.isalpha() else "")
    return JSONResponse([c.to_dict() for c in found])


# -- observatory -------------------------------------------------------------------------------


def _filters(actor_type: str, purpose: str, start: str, end: str) -> Filters:
    return Filters(
        _choice(OrgType, actor_type), _choice(Purpose, purpose), _date(start), _date(end)
    )


@router.get("/observatory")
def observatory(
    request: Request,
    actor_type: Text = "",
    purpose: Text = "",
    start: Text = "",
    end: Text = "",
) -> Response:
    f = _filters(actor_type, purpose, start, end)
    obs = request.app.state.observatory.get(f)
    return render(
        request,
        "observatory.html",
        obs=obs,
        tables=obs.tables(),
        org_types=list(OrgType),
        purposes=list(Purpose),
        actor_type=f.actor_type.value if f.actor_type else "",
        purpose=f.purpose.value if f.purpose else "",
        start=f.start.isoformat() if f.start else "",
        end=f.end.isoformat() if f.end else "",
    )


@router.get("/observatory/{table}.csv")
def observatory_csv(
    request: Request,
    table: str,
    actor_type: Text = "",
    purpose: Text = "",
    start: Text = "",
    end: Text = "",
) -> Response:
    obs = request.app.state.observatory.get(_filters(actor_type, purpose, start, end))
    tables = obs.tables()
    if table not in tables:
        raise NotFound(f"no observatory table named {table!r}")
    return Response(
        to_csv(tables[table]),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="observatory-{table}.csv"'},
    )
