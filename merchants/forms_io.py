"""Reading a portal form from the request body, bounded: the CSRF check and the page both need
its fields, and neither may make the server read an unbounded body. URL-encoded forms are parsed
here (with a size and field-count cap); multipart forms go through Starlette's parser with the
same caps; any other body (JSON for the API) is left to the route, and its CSRF token must come
in the X-CSRF-Token header."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request
from starlette.datastructures import FormData, UploadFile

from merchants.errors import FormLengthRequiredError, FormTooLargeError, FormUnreadableError

MAX_FORM_BYTES = 64 * 1024
MAX_FORM_FIELDS = 200
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_TOO_LARGE = f"提交的内容过大（上限{MAX_FORM_BYTES // 1024} KB）"


async def _bounded_body(request: Request) -> bytes:
    # Browsers send a Content-Length with every form; without one (a chunked body) the size is
    # unknown until it has all been read, so such a body is refused before any of it is.
    declared = request.headers.get("content-length")
    if declared is None:
        raise FormLengthRequiredError("缺少 Content-Length")
    if not declared.isdigit() or int(declared) > MAX_FORM_BYTES:
        raise FormTooLargeError(_TOO_LARGE)
    # request.body() keeps the bytes, so the route may still call request.form() itself.
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:  # pragma: no cover - servers hold a body to its length
        raise FormTooLargeError(_TOO_LARGE)
    return body


def _parse_urlencoded(body: bytes) -> FormData:
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise FormUnreadableError("无法读取提交的表单（编码有误或字段过多）") from None
    fields: list[tuple[str, str | UploadFile]] = [*pairs]
    return FormData(fields)


async def _read(request: Request, content_type: str) -> FormData:
    if content_type == "application/x-www-form-urlencoded":
        try:
            return _parse_urlencoded(await _bounded_body(request))
        except RuntimeError:  # the route's own Form(...) parameters have read the body
            return await request.form()
    if content_type == "multipart/form-data":
        declared = request.headers.get("content-length")
        if declared is None or not declared.isdigit() or int(declared) > MAX_FORM_BYTES:
            raise FormTooLargeError(_TOO_LARGE)
        return await request.form(
            max_files=4, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_BYTES
        )
    return FormData()


async def read_form(request: Request) -> FormData:
    """The submitted form of an unsafe request (empty for GET and for non-form bodies); read
    once per request and kept on request.state."""
    cached = getattr(request.state, "portal_form", None)
    if isinstance(cached, FormData):
        return cached
    form = FormData()
    if request.method not in _SAFE_METHODS:
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        form = await _read(request, content_type)
    request.state.portal_form = form
    return form
