"""What every HTML page shares: templates, language, the session cookie, CSRF, error pages.

The session cookie carries the access package's bearer token (HttpOnly, SameSite=Lax); every
form carries a CSRF token that must equal the `passerelle_csrf` cookie (double submit, compared
in constant time). Errors of the service layer are rendered as an HTML page with their status;
an unauthenticated visitor is sent to the login page.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from passerelle.access.auth import Principal
from passerelle.access.enums import Role
from passerelle.access.errors import Forbidden, Unauthenticated
from passerelle.errors import PasserelleError
from passerelle.web import i18n
from passerelle.web.deps import Services
from passerelle.web.pages import charts

SESSION_COOKIE = "passerelle_session"
CSRF_COOKIE = "passerelle_csrf"
CSRF_FIELD = "csrf"
log = logging.getLogger(__name__)
MAX_FORM_BYTES = 1_000_000
WEB_DIR = Path(__file__).resolve().parent.parent
TEMPLATES = WEB_DIR / "templates"
STATIC = WEB_DIR / "static"

env = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
env.globals["charts"] = charts


def _fmt_dt(v: Any) -> str:
    return v.strftime("%Y-%m-%d %H:%M") if hasattr(v, "strftime") else ("" if v is None else str(v))


def _fmt_num(v: Any, digits: int = 1) -> str:
    if v is None:
        return "\u2013"
    if isinstance(v, float):
        return f"{v:,.{digits}f}".replace(",", "\u202f")
    if isinstance(v, int):
        return f"{v:,}".replace(",", "\u202f")
    return str(v)


env.filters["dt"] = _fmt_dt
env.filters["num"] = _fmt_num


@dataclass(frozen=True)
class Viewer:
    """The logged-in user as pages need them."""

    principal: Principal
    name: str
    email: str
    organisation_name: str

    def has(self, *roles: Role) -> bool:
        return self.principal.has(*roles)


def services(request: Request) -> Services:
    return request.app.state.services


def translator(request: Request) -> i18n.Translator:
    t = getattr(request.state, "t", None)
    if t is None:
        lang = i18n.pick(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))
        t = request.state.t = i18n.Translator(lang)
    return t


def csrf_token(request: Request) -> str:
    token = getattr(request.state, "csrf", None)
    if token is None:
        token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
        request.state.csrf = token
    return token


def viewer(request: Request) -> Viewer | None:
    if hasattr(request.state, "viewer"):
        return request.state.viewer
    request.state.viewer = None
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        svc = services(request)
        try:
            p = svc.accounts.authenticate(token)
        except Unauthenticated:
            return None
        if p.kind == "user" and p.user_id is not None:
            user = svc.accounts.get_user(None, p.user_id)
            org = svc.accounts.get_org(p.organisation_id)
            request.state.viewer = Viewer(p, user.name, user.email, org.name)
    return request.state.viewer


def require(request: Request, *roles: Role) -> Viewer:
    v = viewer(request)
    if v is None:
        raise Unauthenticated("log in to see this page")
    if roles and not v.has(*roles):
        t = translator(request)
        raise Forbidden(t("This page needs the role {roles}.", roles=" / ".join(roles)))
    return v


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    t = translator(request)
    token = csrf_token(request)
    html = env.get_template(template).render(
        request=request,
        t=t,
        lang=t.lang,
        me=viewer(request),
        csrf=Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{token}">'),
        csrf_value=token,
        path=request.url.path,
        query=str(request.url.query),
        **context,
    )
    resp = HTMLResponse(html, status_code=status_code)
    if request.cookies.get(CSRF_COOKIE) != token:
        resp.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", path="/")
    resp.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    return resp


class Form:
    """A urlencoded form body (multi-valued), checked for its CSRF token."""

    def __init__(self, data: dict[str, list[str]]) -> None:
        self.data = data

    def get(self, name: str, default: str = "") -> str:
        values = self.data.get(name)
        return values[0].strip() if values else default

    def all(self, name: str) -> list[str]:
        return [v.strip() for v in self.data.get(name, []) if v.strip()]

    def has(self, name: str) -> bool:
        return name in self.data


async def form(request: Request) -> Form:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise PasserelleError("form too large")
    data = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    given = (data.get(CSRF_FIELD) or [""])[0]
    expected = request.cookies.get(CSRF_COOKIE) or ""
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Forbidden(translator(request)("The form expired or came from another site."))
    return Form(data)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def safe_next(url: str | None) -> str:
    """Only a local path: never redirect to another site."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/"
    return url


def error_page(request: Request, status: int, message: str) -> Response:
    if status == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        resp = redirect(f"/login?next={quote(target)}")
        if request.cookies.get(SESSION_COOKIE):
            resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp
    if status == 500:  # an unexpected error: its text may say too much
        message = translator(request)("Something went wrong on our side.")
    return render(request, "error.html", status_code=status, status=status, message=message)


class HtmlRoute(APIRoute):
    """A route whose errors become HTML pages instead of the API's JSON errors."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except PasserelleError as exc:
                return error_page(request, exc.http_status, str(exc))
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()) if p != "query")
                return error_page(request, 422, f"{where}: {first.get('msg', 'invalid')}")
            except Exception:  # logged without the request's data; the page says nothing more
                log.exception("unexpected error on %s %s", request.method, request.url.path)
                return error_page(request, 500, "")

        return route
