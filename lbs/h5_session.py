"""Sessions of WeChat users on the H5 pages: who is this browser, by openid.

A page that needs the user (`require_wechat_user`) sends a browser without a session through
WeChat's OAuth2 `snsapi_base` authorization, which is silent inside WeChat: WeChat redirects back
to `/h5/oauth/callback?code=…&state=…`, the code is exchanged for the openid, and the openid is
kept in a signed cookie. The cookie is the whole session (no table): workers share nothing but
`secret_key`, so any worker can read it.

The session times out after `wechat.h5_session_idle_s` without a request; `H5SessionMiddleware`
renews the cookie on each request within that window.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import logging
import re
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, cast

import jinja2
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lbs.client import WeChatApiError, WeChatOAuthError
from tianfu.errors import TianfuError, error_body
from tianfu.settings import ConfigurationError, TianfuSettings

logger = logging.getLogger(__name__)

SESSION_COOKIE = "tianfu_h5"
CALLBACK_PATH = "/h5/oauth/callback"
# Where a login goes back to when the page it started from cannot be carried (see oauth_state).
DEFAULT_NEXT_PATH = "/h5/me"
# Long enough to tap through WeChat's authorize redirect on a slow network, short enough that a
# state copied out of a URL is soon worthless.
OAUTH_STATE_TTL_S = 600

_SESSION_SALT = b"tianfu.h5.session"
_STATE_SALT = b"tianfu.h5.oauth-state"
# WeChat passes `state` back only if it is at most 128 bytes of a-zA-Z0-9 (网页授权 doc), so
# itsdangerous' base64url-with-dots tokens do not fit: the state is base32 (A-Z, 2-7) of
# mac ‖ issued_at ‖ path, with an 80-bit MAC, ample for a value that lives ten minutes.
_STATE_MAX_CHARS = 128
_STATE_MAC_BYTES = 10
# Workers' clocks differ a little; a state issued by one running ahead is still good.
_STATE_CLOCK_SKEW_S = 60
_STATE_RE = re.compile(r"^[A-Z2-7]{24,128}$")
# A local path: one leading slash and no backslash, control character or space, so neither
# "//evil.example" nor "/\evil.example" (which browsers read as another host) can pass.
_LOCAL_PATH_RE = re.compile(r"^/(?![/\\])[\x21-\x5b\x5d-\x7e]*$")

Clock = Callable[[], float]

# The H5 pages of every domain share these templates (h5/base.html) and static files.
STATIC_DIR = Path(__file__).parent / "static" / "h5"
STATIC_URL_PREFIX = "/static/h5"


@functools.cache
def _static_version(name: str) -> str:
    # WeChat's browser caches static files hard; a content hash in the URL makes a deploy show.
    return hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]


def static_url(name: str) -> str:
    return f"{STATIC_URL_PREFIX}/{name}?v={_static_version(name)}"


# Autoescape on for every template, whatever its file name: store names come from merchants.
templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
)
templates.env.globals["static_url"] = static_url

# H5 pages may hold a user's position or identity (and a JS-SDK signature): never cached by a
# proxy. Scripts come from us and from WeChat's JS-SDK host only; the referrer policy keeps a
# signed link out of the Referer that WeChat's script host would see (older WebViews default to
# sending the full URL).
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' https://res.wx.qq.com https://res2.wx.qq.com; "
        "img-src 'self' data:; style-src 'self'; connect-src 'self'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
}
_UNSET = object()


class WeChatLoginRequiredError(TianfuError):
    """No valid H5 session; GET requests are redirected to WeChat's authorization."""

    status_code = 401
    code = "wechat_login_required"


class OAuthStateInvalidError(TianfuError):
    status_code = 403
    code = "oauth_state_invalid"


# -- the cookie ------------------------------------------------------------------------------


class _ClockedSigner(TimestampSigner):
    # itsdangerous reads time.time() itself; taking the clock from the app lets tests drive the
    # idle timeout without sleeping and without patching time for the whole process.
    def __init__(self, *args: Any, clock: Clock = time.time, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock())


def _secret(settings: TianfuSettings) -> str:
    if settings.secret_key is None:
        raise ConfigurationError("TIANFU_SECRET_KEY is needed for H5 sessions (tianfu dev-env)")
    return settings.secret_key.get_secret_value()


def _session_serializer(settings: TianfuSettings, clock: Clock) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        _secret(settings),
        salt=_SESSION_SALT,
        signer=_ClockedSigner,
        signer_kwargs={"clock": clock},
    )


def app_clock(app: Any) -> Clock:
    """The app's clock for H5 sessions: `app.state.h5_clock` if a test set one, else time.time."""
    clock: Clock = getattr(app.state, "h5_clock", time.time)
    return clock


def session_value(settings: TianfuSettings, openid: str, *, clock: Clock = time.time) -> str:
    return str(_session_serializer(settings, clock).dumps({"openid": openid}))


def read_session_value(
    settings: TianfuSettings, value: str, *, clock: Clock = time.time
) -> str | None:
    """The openid in a session cookie, or None if it is forged, malformed or idle too long."""
    found = read_session(settings, value, clock=clock)
    return found[0] if found is not None else None


def read_session(
    settings: TianfuSettings, value: str, *, clock: Clock = time.time
) -> tuple[str, float] | None:
    """(openid, seconds since the cookie was signed), or None as for `read_session_value`."""
    try:
        payload, signed_at = _session_serializer(settings, clock).loads(
            value, max_age=settings.wechat.h5_session_idle_s, return_timestamp=True
        )
    except BadSignature:  # SignatureExpired is a BadSignature: an idle session is no session
        return None
    openid = payload.get("openid") if isinstance(payload, dict) else None
    if not (isinstance(openid, str) and openid):
        return None
    return openid, max(0.0, clock() - signed_at.timestamp())


def session_cookie_header(settings: TianfuSettings, openid: str, *, clock: Clock) -> str:
    """A Set-Cookie value for a fresh session; Max-Age matches the idle window so the browser
    drops the cookie when the server would refuse it anyway."""
    secure = "; Secure" if settings.public_base_url.startswith("https://") else ""
    return (
        f"{SESSION_COOKIE}={session_value(settings, openid, clock=clock)}; "
        f"Max-Age={settings.wechat.h5_session_idle_s}; Path=/; HttpOnly; SameSite=Lax{secure}"
    )


def current_openid(request: Request) -> str | None:
    """The openid of this browser's H5 session, if it has a valid one."""
    cached = getattr(request.state, "h5_openid", _UNSET)
    if cached is not _UNSET:  # several dependencies of one request may ask
        return cast("str | None", cached)
    value = request.cookies.get(SESSION_COOKIE)
    settings: TianfuSettings = request.app.state.settings
    openid = read_session_value(settings, value, clock=app_clock(request.app)) if value else None
    request.state.h5_openid = openid
    return openid


def require_wechat_user(request: Request) -> str:
    """The openid of the WeChat user; without a session, the browser is sent to log in."""
    openid = current_openid(request)
    if openid is None:
        raise WeChatLoginRequiredError("open this page from the WeChat Official Account")
    return openid


CurrentOpenid = Annotated[str | None, Depends(current_openid)]
WeChatUser = Annotated[str, Depends(require_wechat_user)]


def _renewal_age_s(settings: TianfuSettings) -> float:
    return min(60.0, settings.wechat.h5_session_idle_s / 10)


class H5SessionMiddleware:
    """Renews a valid session cookie on every request, so the session ends only after
    `h5_session_idle_s` without a request. A response that sets the cookie itself (the OAuth
    callback, a logout) is left alone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        value = connection.cookies.get(SESSION_COOKIE)
        if not value:
            await self.app(scope, receive, send)
            return
        settings: TianfuSettings = scope["app"].state.settings
        clock = app_clock(scope["app"])
        found = read_session(settings, value, clock=clock)
        openid = found[0] if found is not None else None
        # Checked once per request: current_openid finds the answer in the request's state.
        scope.setdefault("state", {})["h5_openid"] = openid
        # Re-signing on every request would cost every request; a cookie is renewed once it is
        # a little old, which moves the idle deadline by at most that little.
        if found is None or found[1] < _renewal_age_s(settings):
            await self.app(scope, receive, send)
            return

        async def send_renewed(message: Message) -> None:
            if message["type"] == "http.response.start" and openid is not None:
                headers = MutableHeaders(scope=message)
                prefix = f"{SESSION_COOKIE}="
                if not any(v.startswith(prefix) for v in headers.getlist("set-cookie")):
                    headers.append(
                        "set-cookie", session_cookie_header(settings, openid, clock=clock)
                    )
            await send(message)

        await self.app(scope, receive, send_renewed)


# -- the OAuth state -------------------------------------------------------------------------


def is_local_path(path: str) -> bool:
    return bool(_LOCAL_PATH_RE.fullmatch(path))


def _state_mac(settings: TianfuSettings, body: bytes) -> bytes:
    key = hmac.new(_secret(settings).encode(), _STATE_SALT, hashlib.sha256).digest()
    return hmac.new(key, body, hashlib.sha256).digest()[:_STATE_MAC_BYTES]


def _pack_state(settings: TianfuSettings, path: str, *, issued_at: float) -> str:
    body = struct.pack(">I", int(issued_at)) + path.encode("ascii")
    raw = _state_mac(settings, body) + body
    return base64.b32encode(raw).decode("ascii").rstrip("=")


def oauth_state(settings: TianfuSettings, next_path: str, *, clock: Clock = time.time) -> str:
    """A signed, short-lived `state` naming the local page to return to after the login.

    A path that is not local falls back to DEFAULT_NEXT_PATH; one too long for WeChat's 128
    characters loses its query string first, then falls back too: the user lands on a page of
    ours either way, never on another host.
    """
    candidates = [next_path, next_path.split("?", 1)[0], DEFAULT_NEXT_PATH]
    for path in candidates:
        if not is_local_path(path):
            continue
        state = _pack_state(settings, path, issued_at=clock())
        if len(state) <= _STATE_MAX_CHARS:
            return state
    return _pack_state(settings, DEFAULT_NEXT_PATH, issued_at=clock())


def read_oauth_state(settings: TianfuSettings, state: str, *, clock: Clock = time.time) -> str:
    """The local path a valid state names; OAuthStateInvalidError otherwise."""
    if not _STATE_RE.fullmatch(state):
        raise OAuthStateInvalidError("malformed state")
    try:
        raw = base64.b32decode(state + "=" * (-len(state) % 8))
    except binascii.Error:
        raise OAuthStateInvalidError("malformed state") from None
    mac, body = raw[:_STATE_MAC_BYTES], raw[_STATE_MAC_BYTES:]
    if len(body) < 5:  # issued_at and at least "/"
        raise OAuthStateInvalidError("malformed state")
    if not hmac.compare_digest(mac, _state_mac(settings, body)):
        raise OAuthStateInvalidError("state signature does not match")
    (issued_at,) = struct.unpack(">I", body[:4])
    if not -_STATE_CLOCK_SKEW_S <= clock() - issued_at <= OAUTH_STATE_TTL_S:
        raise OAuthStateInvalidError("state expired")
    path = body[4:].decode("ascii", errors="replace")
    # Signed by us, so local when issued; checked again so a future bug in oauth_state cannot
    # turn the callback into an open redirect.
    if not is_local_path(path):
        raise OAuthStateInvalidError("state does not name a local path")
    return path


# -- routes and the login redirect -----------------------------------------------------------


def message_page(
    request: Request, *, status_code: int, title: str, message: str, action: str | None = None
) -> HTMLResponse:
    """A short Chinese page for errors a WeChat user may meet; never JSON or a traceback."""
    return templates.TemplateResponse(
        request,
        "h5/message.html",
        {"title": title, "message": message, "action": action},
        status_code=status_code,
        headers=PAGE_HEADERS,
    )


def _callback_url(settings: TianfuSettings) -> str:
    # WeChat only redirects to the domain registered as 网页授权域名, which is the public one;
    # the Host header of this request may be an internal name behind the proxy.
    return f"{settings.public_base_url}{CALLBACK_PATH}"


async def redirect_to_wechat_login(request: Request, exc: Exception) -> Response:
    """Handler of WeChatLoginRequiredError: a page (GET) goes through OAuth and comes back;
    anything else (a form post, a fetch) gets a 401 and should reload its page to log in."""
    assert isinstance(exc, WeChatLoginRequiredError)
    if request.method not in ("GET", "HEAD"):
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status_code)
    client = getattr(request.app.state, "wechat_client", None)
    if client is None:  # no appid/appsecret configured: there is no WeChat to log in with
        return message_page(
            request,
            status_code=503,
            title="暂时无法登录",
            message="微信登录暂未开通，请稍后再试。",
        )
    settings: TianfuSettings = request.app.state.settings
    # The path as sent (percent-encoded ASCII), so /h5/搜索 survives; url.path is decoded.
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.url.query
    next_path = raw_path.decode("latin-1") + (f"?{query}" if query else "")
    state = oauth_state(settings, next_path, clock=app_clock(request.app))
    url = client.oauth_authorize_url(
        redirect_uri=_callback_url(settings), state=state, scope="snsapi_base"
    )
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})


def install_h5_session(app: FastAPI) -> None:
    """Redirects to WeChat's login for pages behind `require_wechat_user`, and renews sessions.
    Call after `install_error_handlers`; this handler is more specific than TianfuError's."""
    app.add_exception_handler(WeChatLoginRequiredError, redirect_to_wechat_login)
    app.add_middleware(H5SessionMiddleware)


router = APIRouter(tags=["h5"], include_in_schema=False)


@router.get(CALLBACK_PATH, response_class=HTMLResponse)
def oauth_callback(request: Request, code: str = "", state: str = "") -> Response:
    # A sync route: the code exchange is a blocking call to WeChat, run in the thread pool.
    settings: TianfuSettings = request.app.state.settings
    clock = app_clock(request.app)
    try:
        next_path = read_oauth_state(settings, state, clock=clock)
    except OAuthStateInvalidError:
        return message_page(
            request,
            status_code=403,
            title="链接已失效",
            message="登录链接无效或已过期，请回到公众号重新打开页面。",
        )
    retry = next_path  # reopening the page starts a fresh login
    client = getattr(request.app.state, "wechat_client", None)
    if not code or client is None:
        return message_page(
            request,
            status_code=400,
            title="登录未完成",
            message="未能完成微信授权，请重试。",
            action=retry,
        )
    try:
        openid = client.oauth_openid(code)
    except WeChatOAuthError:  # a code is single-use and lives five minutes
        return message_page(
            request,
            status_code=400,
            title="登录未完成",
            message="授权已失效（可能已使用过），请重新打开页面。",
            action=retry,
        )
    except WeChatApiError as exc:  # WeChat down, or refusing our appid/secret
        logger.warning("OAuth code exchange failed: %s", exc)
        return message_page(
            request,
            status_code=503,
            title="稍后再试",
            message="微信服务暂时无法连接，请稍后再试。",
            action=retry,
        )
    response = RedirectResponse(next_path, status_code=302, headers={"Cache-Control": "no-store"})
    response.headers.append("set-cookie", session_cookie_header(settings, openid, clock=clock))
    return response
