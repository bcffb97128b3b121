"""One place renders every error as JSON: {"error": {"status": ..., "message": ...}}.

A PasserelleError carries its HTTP status; request validation becomes 422 naming the field;
anything unexpected is a 500 whose message says nothing about the data.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from passerelle.errors import PasserelleError

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    status: int
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


def model_response(model: BaseModel, status: int = 200) -> Response:
    """Serialize a validated model once (FastAPI would validate it again on the way out)."""
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


def json_response(data: Any, status: int = 200) -> Response:
    """Plain values already shaped like the route's response_model (kept for the schema),
    serialised by orjson without a second validation; UTC datetimes end in Z, as pydantic
    writes them (tests/access/test_access_listing_rows.py compares both)."""
    return Response(
        orjson.dumps(data, option=orjson.OPT_UTC_Z),
        status_code=status,
        media_type="application/json",
    )


def error_response(status: int, message: str, headers: dict[str, str] | None = None):
    body = ErrorOut(error=ErrorBody(status=status, message=message))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        where = ".".join(loc) or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    @app.exception_handler(PasserelleError)
    async def _passerelle(request: Request, exc: PasserelleError) -> JSONResponse:
        status = exc.http_status
        if status >= 500:
            log.error("%s on %s %s", type(exc).__name__, request.method, request.url.path)
            return error_response(status, "internal error")
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return error_response(status, str(exc), headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error")


# Documented on every route: the error responses a client must handle.
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorOut, "description": text}
    for code, text in (
        (400, "Bad request"),
        (401, "Missing, wrong, expired or revoked credentials"),
        (403, "Role or organisation does not allow this"),
        (404, "No such object"),
        (409, "The object's state does not allow this"),
        (422, "A field is invalid"),
        (429, "Too many failed logins"),
    )
}
