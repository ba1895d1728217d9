"""One error envelope for every failure: ``{code, message, details, request_id}``.

Clients see a stable code and a message written for them; exception text, stack
traces and connection strings stay in the server's log.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}


class BodyTooLarge(StarletteHTTPException):
    """The request body is over the cap.

    An HTTP exception so that FastAPI, which turns any other failure while reading the
    body into a 400, lets it through to :func:`install`'s handler; the connection is
    closed after the answer, since the rest of the body is never read.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            413,
            f"the request body is over the {max_bytes}-byte limit",
            headers={"Connection": "close"},
        )
        self.max_bytes = max_bytes


class ApiError(Exception):
    """An error meant for the client: its status, code, message and optional details."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def invalid(field: str | tuple[str | int, ...], message: str, *, part: str = "body") -> ApiError:
    """A 422 shaped like FastAPI's own validation errors, so clients read one format; the
    message never quotes the input."""
    loc: list[str | int] = [part, field] if isinstance(field, str) else [part, *field]
    details = [{"loc": loc, "msg": message, "type": "value_error"}]
    return ApiError(422, "VALIDATION_ERROR", message, details=details)


def conflict(message: str, **details: Any) -> ApiError:
    """409: the resource is not in a state that allows the request."""
    return ApiError(409, "CONFLICT", message, details=details or None)


def request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"code": code, "message": message, "details": details, "request_id": request_id(request)}
    return JSONResponse(body, status_code=status, headers=headers)


def too_large_response(request: Request, error: BodyTooLarge) -> JSONResponse:
    return error_response(
        request,
        413,
        "PAYLOAD_TOO_LARGE",
        str(error.detail),
        {"max_bytes": error.max_bytes},
        dict(error.headers or {}),
    )


def internal_error_response(request: Request, error: BaseException) -> JSONResponse:
    """Log the failure with its traceback; answer the client without any of it."""
    logger.error(
        "unhandled error in %s %s (request %s)",
        request.method,
        request.url.path,
        request_id(request),
        exc_info=error,
    )
    return error_response(
        request, 500, "INTERNAL_ERROR", "something went wrong on our side; try again"
    )


_LOC_PART_CHARS = 100


def _loc_part(part: object) -> str:
    """A location step; a client-chosen key (an unknown field) is cut short, not echoed whole."""
    text = str(part)
    return text if len(text) <= _LOC_PART_CHARS else text[: _LOC_PART_CHARS - 1] + "…"


def _validation_details(error: RequestValidationError) -> list[dict[str, Any]]:
    """Where and what, never the rejected input itself (it may be large or private)."""
    return [
        {
            "loc": [_loc_part(part) for part in item.get("loc", ())],
            "msg": item.get("msg", ""),
            "type": item.get("type", ""),
        }
        for item in error.errors()
    ]


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the envelope."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(
            request, error.status, error.code, error.message, error.details, error.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(
            request,
            422,
            "VALIDATION_ERROR",
            "the request is not valid",
            _validation_details(error),
        )

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, error: BodyTooLarge) -> JSONResponse:
        return too_large_response(request, error)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400 and isinstance(error.__cause__, UnicodeDecodeError):
            # FastAPI answers 400 for a JSON body that is not UTF-8; it is malformed JSON,
            # so it gets the same 422 as any other.
            return error_response(
                request,
                422,
                "VALIDATION_ERROR",
                "the request is not valid",
                [{"loc": ["body"], "msg": "the body is not UTF-8 JSON", "type": "json_invalid"}],
            )
        code = _STATUS_CODES.get(error.status_code, "ERROR")
        message = error.detail if isinstance(error.detail, str) else code.lower()
        headers = dict(error.headers) if error.headers else None
        return error_response(request, error.status_code, code, message, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        # A backstop only: ApiMiddleware answers unexpected errors itself, inside the
        # layer that adds X-Request-ID, which this outermost handler is not.
        return internal_error_response(request, error)
