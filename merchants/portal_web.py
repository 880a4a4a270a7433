"""What every portal page shares: the Jinja environment (merchants/templates, autoescaped,
StrictUndefined), the response headers and strict CSP with a per-response nonce, the navigation
that adapts to the role, the short message page, and the rendering of the gate's refusals.

A page extends "portal/base.html" and is rendered with `render(request, name, context, user=…)`
(or `render_public` for visitors without a session, which also sets the pre-session CSRF cookie).
Every form carries `<input type="hidden" name="csrf_token" value="{{ csrf_token }}">` (the
`csrf_field()` macro in portal/_forms.html). Inline <style> and <script> need `nonce="{{ nonce }}"`;
nothing is loaded from another origin.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.routing import BaseRoute

from merchants.auth import (
    LOGIN_PATH,
    Principal,
    forget_session,
    pre_session_token,
    set_pre_session_cookie,
)
from merchants.errors import LoginRequiredError, PortalAccessError
from merchants.models import ApplicationStatus, MerchantStatus, PortalRole
from tianfu.errors import error_body

SHANGHAI = ZoneInfo("Asia/Shanghai")
ROLE_ZH = {
    PortalRole.bank_admin: "银行管理员",
    PortalRole.merchant_owner: "商户负责人",
    PortalRole.merchant_staff: "店员",
}
MERCHANT_STATUS_ZH = {
    MerchantStatus.pending: "待审核",
    MerchantStatus.approved: "已通过",
    MerchantStatus.suspended: "已暂停",
}
APPLICATION_STATUS_ZH = {
    ApplicationStatus.submitted: "审核中",
    ApplicationStatus.rejected: "已驳回",
    ApplicationStatus.approved: "已通过",
}

_MERCHANT = frozenset({PortalRole.merchant_owner, PortalRole.merchant_staff})
_OWNER = frozenset({PortalRole.merchant_owner})
_ADMIN = frozenset({PortalRole.bank_admin})


@dataclass(frozen=True)
class NavLink:
    label: str
    path: str
    roles: frozenset[PortalRole]


# The portal's sections per role. A link whose page does not exist yet is left out of the menu
# and shown as "即将开放" on the dashboard; adding a GET route at its path switches it on.
NAV_LINKS = (
    NavLink("门店", "/portal/stores", _MERCHANT),
    NavLink("优惠", "/portal/offers", _MERCHANT),
    NavLink("核销", "/portal/counter", _MERCHANT),
    NavLink("销售", "/portal/sales", _MERCHANT),
    NavLink("API 密钥", "/portal/api-keys", _OWNER),
    NavLink("店员", "/portal/staff", _OWNER),
    NavLink("入驻申请", "/portal/application", _OWNER),
    NavLink("商户审核", "/portal/admin/applications", _ADMIN),
    NavLink("商户管理", "/portal/admin/merchants", _ADMIN),
    NavLink("优惠审核", "/portal/admin/offers", _ADMIN),
    NavLink("对账", "/portal/admin/reconciliation", _ADMIN),
    NavLink("结算", "/portal/admin/settlements", _ADMIN),
    NavLink("审计", "/portal/admin/audit", _ADMIN),
)

_CSP = (
    "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
# Portal pages show one merchant's business to its own people: never cached, never framed.
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def compact_json(value: object, limit: int = 160) -> str:
    """A short plain-text rendering (autoescaped like any text when shown)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shanghai(value: datetime | None) -> str:
    return value.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") if value else ""


templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        # On for every template whatever its name: names and reasons come from merchants.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
)
templates.env.filters["shanghai"] = shanghai
templates.env.filters["compact_json"] = compact_json
templates.env.globals.update(
    ROLE_ZH=ROLE_ZH,
    MERCHANT_STATUS_ZH=MERCHANT_STATUS_ZH,
    APPLICATION_STATUS_ZH=APPLICATION_STATUS_ZH,
)


def page_headers(nonce: str) -> dict[str, str]:
    return _HEADERS | {"Content-Security-Policy": _CSP.format(nonce=nonce)}


@dataclass(frozen=True)
class RouteInfo:
    path: str  # with its routers' prefixes
    methods: frozenset[str]
    route: BaseRoute  # the route as declared (an APIRoute, a Mount, …)


def route_table(app: FastAPI) -> list[RouteInfo]:
    """Every route of the app with its full path. Recent FastAPI keeps an included router as
    one lazy entry of `app.routes`; `iter_route_contexts` walks into them."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - FastAPI before included routers became lazy
        return [
            RouteInfo(getattr(r, "path", ""), frozenset(getattr(r, "methods", None) or ()), r)
            for r in app.routes
        ]
    return [
        RouteInfo(context.path or "", frozenset(context.methods or ()), context.original_route)
        for context in iter_route_contexts(app.routes)
    ]


def _get_paths(request: Request) -> frozenset[str]:
    paths: frozenset[str] | None = getattr(request.app.state, "portal_get_paths", None)
    if paths is None:
        paths = frozenset(
            info.path
            for info in route_table(request.app)
            if isinstance(info.route, APIRoute) and "GET" in info.methods
        )
        request.app.state.portal_get_paths = paths
    return paths


def sections(request: Request, user: Principal) -> list[dict[str, Any]]:
    """The role's sections: label, path, whether the page exists yet, whether it is this one."""
    paths = _get_paths(request)
    return [
        {
            "label": link.label,
            "path": link.path,
            "ready": link.path in paths,
            "current": request.url.path == link.path,
        }
        for link in NAV_LINKS
        if user.role in link.roles
    ]


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    user: Principal | None,
    status_code: int = 200,
    csrf_token: str = "",
) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    full = context | {
        "nonce": nonce,
        "user": user,
        "nav": sections(request, user) if user else [],
        "csrf_token": user.csrf_token if user else csrf_token,
    }
    response = templates.TemplateResponse(
        request, name, full, status_code=status_code, headers=page_headers(nonce)
    )
    assert isinstance(response, HTMLResponse)
    return response


def render_public(
    request: Request, name: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    """A page for visitors without a session; its forms carry the pre-session CSRF token."""
    token, fresh = pre_session_token(request)
    response = render(request, name, context, user=None, status_code=status_code, csrf_token=token)
    if fresh:
        set_pre_session_cookie(request, response, token)
    return response


def message_page(
    request: Request,
    *,
    status_code: int,
    title: str,
    message: str,
    link: tuple[str, str] | None = None,
    user: Principal | None = None,
) -> HTMLResponse:
    user = user or getattr(request.state, "portal_principal", None)
    context = {"title": title, "message": message, "link": link}
    if user is None:
        return render_public(request, "portal/message.html", context, status_code=status_code)
    return render(request, "portal/message.html", context, user=user, status_code=status_code)


def see_other(path: str) -> RedirectResponse:
    """The answer to a form post that worked (Post/Redirect/Get)."""
    return RedirectResponse(path, status_code=303, headers={"Cache-Control": "no-store"})


def login_url(next_path: str) -> str:
    return f"{LOGIN_PATH}?next={quote(next_path, safe='/')}"


_TITLES = {401: "需要登录", 403: "无法执行", 404: "未找到", 413: "内容过大", 400: "请求有误"}


async def handle_portal_access_error(request: Request, exc: Exception) -> Response:
    """Refusals of the gate: JSON under /api, a page (or the login redirect) under /portal."""
    assert isinstance(exc, PortalAccessError)
    if not request.url.path.startswith("/portal"):
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status_code)
    response: Response
    if isinstance(exc, LoginRequiredError) and request.method in ("GET", "HEAD"):
        response = see_other(login_url(request.url.path))
    else:
        link = (LOGIN_PATH, "重新登录") if isinstance(exc, LoginRequiredError) else None
        response = message_page(
            request,
            status_code=exc.status_code,
            title=_TITLES.get(exc.status_code, "无法执行"),
            message=exc.message,
            link=link or ("/portal", "返回首页"),
        )
    if isinstance(exc, LoginRequiredError):
        forget_session(request, response)
    return response
