"""Domain errors carry their HTTP status and a stable code; one handler renders them all as
`{"error": code, "detail": message}`. Services raise these, never HTTPException."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


class TianfuError(Exception):
    status_code: int = 400
    code: str = "bad_request"

    def __init__(
        self, message: str, *, status_code: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if code is not None:
            self.code = code


class NotFoundError(TianfuError):
    status_code = 404
    code = "not_found"


class ConflictError(TianfuError):
    status_code = 409
    code = "conflict"


class InvalidInputError(TianfuError):
    status_code = 422
    code = "invalid_input"


def error_body(code: str, detail: object) -> dict[str, object]:
    return {"error": code, "detail": detail}


async def _handle_tianfu_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TianfuError)
    return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status_code)


async def _handle_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"field": ".".join(str(part) for part in item["loc"]), "message": item["msg"]}
        for item in exc.errors()
    ]
    return JSONResponse(error_body("invalid_input", problems), status_code=422)


async def _handle_http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        error_body(code, exc.detail), status_code=exc.status_code, headers=exc.headers
    )


async def _handle_database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    # The database could not do it now: SQLite's write lock held past the busy timeout, a
    # PostgreSQL deadlock or a lost connection. The request's transaction is rolled back, so
    # nothing was written and a retry is safe. Handled here rather than as a 500, which
    # Starlette re-raises to the server after answering: the connection would then be dropped.
    logger.warning("database unavailable: %s", exc)
    return JSONResponse(
        error_body("database_unavailable", "系统繁忙，请稍后重试"),
        status_code=503,
        headers={"Retry-After": "1"},
    )


async def _handle_data_error(_request: Request, exc: Exception) -> JSONResponse:
    # A value the database cannot take (an id past its integer range, say): it came from the
    # request, and nothing was written.
    logger.info("value refused by the database: %s", exc)
    return JSONResponse(error_body("invalid_input", "参数超出范围"), status_code=422)


async def _handle_unexpected(_request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the log, never to the client.
    logger.exception("unhandled error", exc_info=exc)
    return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TianfuError, _handle_tianfu_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_error)
    app.add_exception_handler(DataError, _handle_data_error)
    app.add_exception_handler(OperationalError, _handle_database_unavailable)
    app.add_exception_handler(Exception, _handle_unexpected)
