"""The WeChat API on loopback (ARCHITECTURE.md, "External systems and their simulators"): the same
URLs, JSON shapes and errcodes as api.weixin.qq.com and open.weixin.qq.com for what Tianfu uses
(spec §8): access tokens, jsapi_ticket, customer-service and template messages with their
TEMPLATESENDJOBFINISH callback, and OAuth2 web authorization.

`/sim/...` routes are the simulator's own: record a user's action (it opens a customer-service
window), read what a user received, inject faults, move the clock, reset. Tests in this process
reach the same state as `app.state.sim`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse
from pydantic import BaseModel, Field

from lbs.config import decode_encoding_aes_key
from lbs.wechat_push import EncryptMode, PushClient, event_xml
from lbs.wxcrypto import WXBizMsgCrypt
from tianfu.settings import ConfigurationError

if TYPE_CHECKING:
    from tianfu.settings import TianfuSettings

logger = logging.getLogger(__name__)

WeChatError = tuple[int, str]  # (errcode, errmsg) as WeChat spells them
INVALID_TOKEN: WeChatError = (40001, "invalid credential, access_token is invalid or not latest")
EXPIRED_TOKEN: WeChatError = (42001, "access_token expired")
MISSING_TOKEN: WeChatError = (41001, "access_token missing")
SYSTEM_BUSY: WeChatError = (-1, "system error")
DATA_FORMAT: WeChatError = (47001, "data format error")
WINDOW_EXPIRED: WeChatError = (45015, "response out of time limit or subscription is canceled")
QUOTA_EXCEEDED: WeChatError = (45047, "out of response count limit")
INVALID_CODE: WeChatError = (40029, "invalid code")
CODE_USED: WeChatError = (40163, "code been used")

# Customer-service allowance per user action (spec §8 table): (messages, within seconds).
# A LOCATION event opens nothing, so it is not a kind here.
InteractionKind = Literal["message", "click", "subscribe", "scan"]
CUSTOMER_SERVICE_ALLOWANCE: dict[str, tuple[int, float]] = {
    "message": (5, 48 * 3600.0),
    "click": (3, 60.0),
    "subscribe": (3, 60.0),
    "scan": (3, 60.0),
}
CLIENT_MSG_ID_WINDOW_S = 600.0  # template dedup per openid + client_msg_id [unverified, spec §8]
OAUTH_CODE_TTL_S = 300.0
OPENID_COOKIE = "sim_wechat_openid"
FaultEndpoint = Literal["token", "ticket", "custom_send", "template_send", "oauth", "*"]
# user_block: the template send succeeds, its TEMPLATESENDJOBFINISH says "failed:user block".
FaultMode = Literal["system_busy", "http_500", "delay", "user_block"]


@dataclass
class SimulatorConfig:
    appid: str
    appsecret: str
    token_ttl_s: int = 7200
    callback_url: str | None = None  # our /wechat, for TEMPLATESENDJOBFINISH
    token: str | None = None  # signs the callbacks
    encoding_aes_key: str | None = None  # set: callbacks are sent in safe mode
    account_id: str = "gh_000000000000"
    template_finish_delay_s: float = 0.5
    # Who a browser without a cookie is at OAuth: the user the CLI chats as (28 chars like a real
    # openid), so the H5 pages it opens belong to that user.
    default_openid: str = "oTianfuSimulatorDefaultUser1"
    # Real WeChat keeps the previous token usable for 5 minutes after a refresh; 0 (the default)
    # invalidates it at once, the harsher case a shared cache must survive.
    old_token_grace_s: float = 0.0


@dataclass
class _Window:
    expires_at: float
    remaining: int


@dataclass
class _Fault:
    endpoint: str
    mode: str
    remaining: int
    delay_s: float


@dataclass
class _Code:
    openid: str
    scope: str
    issued_at: float
    used: bool = False


@dataclass(frozen=True)
class CallbackRecord:
    """One TEMPLATESENDJOBFINISH push, after its tries."""

    msgid: int
    openid: str
    status: str
    delivered: bool
    attempts: int
    error: str | None = None


@dataclass
class _Memory:
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expires at (sim clock)
    token_fetches: int = 0
    ticket_fetches: int = 0
    windows: dict[tuple[str, str], _Window] = field(default_factory=dict)
    inbox: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    template_msgids: dict[tuple[str, str], tuple[int, float]] = field(default_factory=dict)
    template_sends: int = 0
    codes: dict[str, _Code] = field(default_factory=dict)
    faults: list[_Fault] = field(default_factory=list)
    callbacks: list[CallbackRecord] = field(default_factory=list)


class SimulatorState:
    """What the simulated WeChat remembers. Routes run on the server's event loop, tests and the
    callback thread call in from other threads: every method holds the lock."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._clock_offset_s = 0.0
        self._memory = _Memory()
        # Real msgids are large; a random base keeps them unique across simulator restarts,
        # as wechat_template_sends.wechat_msgid is.
        self._next_msgid = 1_000_000_000 + secrets.randbelow(2**40)

    def reset(self) -> None:
        with self._lock:
            self._memory = _Memory()
            self._clock_offset_s = 0.0

    def now(self) -> float:
        return time.monotonic() + self._clock_offset_s

    def advance_clock(self, seconds: float) -> None:
        """Token, window, dedup and code lifetimes are measured on this clock."""
        with self._lock:
            self._clock_offset_s += seconds

    # -- access token and ticket ----------------------------------------------------------------

    @property
    def token_fetches(self) -> int:
        return self._memory.token_fetches

    @property
    def ticket_fetches(self) -> int:
        return self._memory.ticket_fetches

    def issue_access_token(self) -> str:
        """A new token rotates the previous ones out (spec §8)."""
        token = secrets.token_urlsafe(96)
        with self._lock:
            now, memory = self.now(), self._memory
            grace_until = now + self.config.old_token_grace_s
            memory.tokens = {
                old: min(expiry, grace_until)
                for old, expiry in memory.tokens.items()
                if self.config.old_token_grace_s > 0 and expiry > now
            }
            memory.tokens[token] = now + self.config.token_ttl_s
            memory.token_fetches += 1
        return token

    def check_access_token(self, token: str | None) -> WeChatError | None:
        if not token:
            return MISSING_TOKEN
        with self._lock:
            expires_at = self._memory.tokens.get(token)
            if expires_at is None:
                return INVALID_TOKEN
            return EXPIRED_TOKEN if expires_at <= self.now() else None

    def issue_jsapi_ticket(self) -> str:
        with self._lock:
            self._memory.ticket_fetches += 1
        return secrets.token_urlsafe(64)

    # -- customer-service window, inbox ------------------------------------------------------------

    def record_interaction(self, openid: str, kind: InteractionKind, *, age_s: float = 0) -> None:
        """The user's latest action of a kind opens a fresh window with a fresh allowance."""
        count, within_s = CUSTOMER_SERVICE_ALLOWANCE[kind]
        with self._lock:
            expires_at = self.now() - age_s + within_s
            self._memory.windows[(openid, kind)] = _Window(expires_at, count)

    def use_customer_service_quota(self, openid: str) -> WeChatError | None:
        with self._lock:
            now = self.now()
            open_windows = [
                window
                for (user, _kind), window in self._memory.windows.items()
                if user == openid and window.expires_at > now
            ]
            if not open_windows:
                return WINDOW_EXPIRED
            usable = [window for window in open_windows if window.remaining > 0]
            if not usable:
                return QUOTA_EXCEEDED
            min(usable, key=lambda window: window.expires_at).remaining -= 1
            return None

    def deliver(self, openid: str, message: dict[str, Any]) -> None:
        with self._lock:
            self._memory.inbox.setdefault(openid, []).append(
                {**message, "received_at": int(time.time())}
            )

    def inbox(self, openid: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._memory.inbox.get(openid, []))

    # -- template messages ---------------------------------------------------------------------

    @property
    def template_sends(self) -> int:
        """Template messages delivered (deduplicated sends not counted)."""
        return self._memory.template_sends

    def template_msgid(self, openid: str, client_msg_id: str | None) -> tuple[int, bool]:
        """The msgid for a send and whether it is new: a client_msg_id seen for this user within
        the window gets its first msgid back and is not delivered again."""
        with self._lock:
            now, memory = self.now(), self._memory
            key = (openid, client_msg_id) if client_msg_id else None
            if key is not None and key in memory.template_msgids:
                msgid, sent_at = memory.template_msgids[key]
                if now - sent_at < CLIENT_MSG_ID_WINDOW_S:
                    return msgid, False
            msgid = self._next_msgid
            self._next_msgid += 1
            memory.template_sends += 1
            if key is not None:
                memory.template_msgids[key] = (msgid, now)
            return msgid, True

    @property
    def callbacks(self) -> list[CallbackRecord]:
        with self._lock:
            return list(self._memory.callbacks)

    def record_callback(self, record: CallbackRecord) -> None:
        with self._lock:
            self._memory.callbacks.append(record)

    # -- OAuth codes -------------------------------------------------------------------------------

    def issue_code(self, openid: str, scope: str) -> str:
        code = secrets.token_hex(16)
        with self._lock:
            self._memory.codes[code] = _Code(openid, scope, self.now())
        return code

    def redeem_code(self, code: str) -> _Code | WeChatError:
        with self._lock:
            issued = self._memory.codes.get(code)
            if issued is None or self.now() - issued.issued_at > OAUTH_CODE_TTL_S:
                return INVALID_CODE
            if issued.used:
                return CODE_USED
            issued.used = True
            return issued

    # -- faults ----------------------------------------------------------------------------------

    def add_fault(self, endpoint: str, mode: str, *, count: int = 1, delay_s: float = 0) -> None:
        with self._lock:
            self._memory.faults.append(_Fault(endpoint, mode, count, delay_s))

    def take_fault(self, endpoint: str, modes: frozenset[str]) -> _Fault | None:
        with self._lock:
            for fault in self._memory.faults:
                if fault.endpoint in (endpoint, "*") and fault.mode in modes:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._memory.faults.remove(fault)
                    return fault
        return None

    def stats(self) -> dict[str, Any]:
        with self._lock:
            memory = self._memory
            return {
                "token_fetches": memory.token_fetches,
                "ticket_fetches": memory.ticket_fetches,
                "template_sends": memory.template_sends,
                "callbacks": [asdict(record) for record in memory.callbacks],
            }


@dataclass(frozen=True)
class _PendingCallback:
    due: float  # time.monotonic(): real seconds, whatever the simulated clock says
    msgid: int
    openid: str
    status: str


class _CallbackSender:
    """Posts TEMPLATESENDJOBFINISH events from one thread, as WeChat does: signed with the token,
    encrypted in safe mode when there is an EncodingAESKey, 5 s per try, 3 tries."""

    def __init__(self, config: SimulatorConfig, state: SimulatorState) -> None:
        self._config = config
        self._state = state
        self._queue: queue.Queue[_PendingCallback] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def schedule(self, msgid: int, openid: str, status: str) -> None:
        due = time.monotonic() + self._config.template_finish_delay_s
        self._queue.put(_PendingCallback(due, msgid, openid, status))
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="wechat-sim-callbacks", daemon=True
                )
                self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _push_client(self) -> PushClient:
        config = self._config
        # Both checked by create_simulator_app.
        assert config.callback_url is not None
        assert config.token is not None
        crypt = None
        if config.encoding_aes_key is not None:
            key = decode_encoding_aes_key(config.encoding_aes_key)
            crypt = WXBizMsgCrypt(token=config.token, aes_key=key, appid=config.appid)
        mode = EncryptMode.safe if crypt is not None else EncryptMode.plaintext
        return PushClient(
            url=config.callback_url,
            token=config.token,
            mode=mode,
            crypt=crypt,
            account_id=config.account_id,
        )

    def _run(self) -> None:
        with self._push_client() as push:
            while not self._stop.is_set():
                try:
                    pending = self._queue.get(timeout=0.1)
                except queue.Empty:
                    continue
                if self._stop.wait(max(0.0, pending.due - time.monotonic())):
                    return
                self._state.record_callback(self._deliver(push, pending))

    def _deliver(self, push: PushClient, pending: _PendingCallback) -> CallbackRecord:
        message = event_xml(
            to_user=self._config.account_id,
            from_user=pending.openid,
            event="TEMPLATESENDJOBFINISH",
            create_time=int(time.time()),
            extra={"MsgID": str(pending.msgid), "Status": pending.status},  # capital D (spec §4)
        )
        record = CallbackRecord(pending.msgid, pending.openid, pending.status, False, push.tries)
        try:
            result = push.send(message)
        except Exception as exc:  # the thread must outlive any receiver's misbehaviour
            logger.warning("TEMPLATESENDJOBFINISH %s not delivered: %s", pending.msgid, exc)
            return replace(record, error=f"{type(exc).__name__}: {exc}")
        return replace(record, delivered=True, attempts=result.attempts)


# -- HTTP ------------------------------------------------------------------------------------------


def _error(error: WeChatError) -> JSONResponse:
    # WeChat answers its errors with HTTP 200 and this body.
    return JSONResponse({"errcode": error[0], "errmsg": error[1]})


def _ok(**fields: Any) -> JSONResponse:
    return JSONResponse({"errcode": 0, "errmsg": "ok", **fields})


def _sim(request: Request) -> SimulatorState:
    state: SimulatorState = request.app.state.sim
    return state


async def _injected(request: Request, endpoint: str) -> Response | None:
    fault = _sim(request).take_fault(endpoint, frozenset({"system_busy", "http_500", "delay"}))
    if fault is None:
        return None
    if fault.mode == "delay":
        await asyncio.sleep(fault.delay_s)
        return None
    if fault.mode == "http_500":
        return PlainTextResponse("Internal Server Error", status_code=500)
    return _error(SYSTEM_BUSY)


async def _json_body(request: Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _app_credentials_error(config: SimulatorConfig, appid: str, secret: str) -> WeChatError | None:
    if appid != config.appid:
        return (40013, "invalid appid")
    if not secrets.compare_digest(secret.encode(), config.appsecret.encode()):
        return (40125, "invalid appsecret")
    return None


async def get_token(request: Request) -> Response:
    query, sim = request.query_params, _sim(request)
    if (injected := await _injected(request, "token")) is not None:
        return injected
    if query.get("grant_type") != "client_credential":
        return _error((40002, "invalid grant_type"))
    refused = _app_credentials_error(sim.config, query.get("appid", ""), query.get("secret", ""))
    if refused is not None:
        return _error(refused)
    token = sim.issue_access_token()
    return JSONResponse({"access_token": token, "expires_in": sim.config.token_ttl_s})


async def get_ticket(request: Request) -> Response:
    sim = _sim(request)
    if (injected := await _injected(request, "ticket")) is not None:
        return injected
    if (refused := sim.check_access_token(request.query_params.get("access_token"))) is not None:
        return _error(refused)
    if request.query_params.get("type") != "jsapi":
        return _error((40097, "invalid args"))
    return _ok(ticket=sim.issue_jsapi_ticket(), expires_in=7200)


def _custom_message_error(body: dict[str, Any]) -> WeChatError | None:
    if not isinstance(body.get("touser"), str) or not body["touser"]:
        return (40003, "invalid openid")
    msgtype = body.get("msgtype")
    if msgtype == "text":
        text = body.get("text")
        content = text.get("content") if isinstance(text, dict) else None
        return None if isinstance(content, str) and content else (44004, "empty content")
    if msgtype == "news":
        articles = body["news"].get("articles") if isinstance(body.get("news"), dict) else None
        if not isinstance(articles, list) or not all(isinstance(a, dict) for a in articles):
            return DATA_FORMAT
        # One article only in customer-service news since 2018-10 (spec §8).
        return None if len(articles) == 1 else (45008, "article size out of limit")
    return (40008, "invalid message type")


async def _authorised_body(request: Request, endpoint: str) -> dict[str, Any] | Response:
    """What every POST API shares: an injected fault, the access token, a JSON object body."""
    if (injected := await _injected(request, endpoint)) is not None:
        return injected
    token = request.query_params.get("access_token")
    if (refused := _sim(request).check_access_token(token)) is not None:
        return _error(refused)
    body = await _json_body(request)
    return _error(DATA_FORMAT) if body is None else body


async def post_custom_send(request: Request) -> Response:
    sim = _sim(request)
    body = await _authorised_body(request, "custom_send")
    if isinstance(body, Response):
        return body
    if (invalid := _custom_message_error(body)) is not None:
        return _error(invalid)
    if (closed := sim.use_customer_service_quota(body["touser"])) is not None:
        return _error(closed)
    message = {key: value for key, value in body.items() if key != "touser"}
    sim.deliver(body["touser"], {"kind": "custom", **message})
    return _ok()


def _template_error(body: dict[str, Any]) -> WeChatError | None:
    if not isinstance(body.get("touser"), str) or not body["touser"]:
        return (40003, "invalid openid")
    if not isinstance(body.get("template_id"), str) or not body["template_id"]:
        return (40037, "invalid template_id")
    data = body.get("data", {})
    well_formed = isinstance(data, dict) and all(
        isinstance(item, dict) and isinstance(item.get("value"), str) for item in data.values()
    )
    return None if well_formed else DATA_FORMAT


def _as_shown(data: dict[str, dict[str, str]]) -> dict[str, str]:
    # WeChat shows at most 20 characters per field since 2023-05, cut without an error (spec §8).
    return {key: item["value"][:20] for key, item in data.items()}


async def post_template_send(request: Request) -> Response:
    sim = _sim(request)
    body = await _authorised_body(request, "template_send")
    if isinstance(body, Response):
        return body
    if (invalid := _template_error(body)) is not None:
        return _error(invalid)
    openid = body["touser"]
    msgid, new = sim.template_msgid(openid, body.get("client_msg_id"))
    if new:
        shown = {"template_id": body["template_id"], "url": body.get("url"), "msgid": msgid}
        sim.deliver(openid, {"kind": "template", **shown, "data": _as_shown(body.get("data", {}))})
        blocked = sim.take_fault("template_send", frozenset({"user_block"})) is not None
        sender: _CallbackSender | None = request.app.state.sim_callbacks
        if sender is not None:
            sender.schedule(msgid, openid, "failed:user block" if blocked else "success")
    return _ok(msgid=msgid)


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _browser_openid(request: Request, sim: SimulatorState) -> str:
    asked = request.query_params.get("sim_openid")
    if asked == "new":  # a fresh user for this browser, shaped like a real openid
        return "o" + secrets.token_urlsafe(21)[:27]
    return asked or request.cookies.get(OPENID_COOKIE) or sim.config.default_openid


async def get_authorize(request: Request) -> Response:
    """The user consents at once (snsapi_base is silent anyway) and is sent back with a code.
    Bad parameters get WeChat's error page, which is text for a person, not JSON."""
    query, sim = request.query_params, _sim(request)
    if query.get("appid") != sim.config.appid:
        return PlainTextResponse("appid 参数错误", status_code=400)
    redirect_uri = query.get("redirect_uri", "")
    if not redirect_uri.startswith(("http://", "https://")):
        return PlainTextResponse("redirect_uri 参数错误", status_code=400)
    scope = query.get("scope", "")
    if query.get("response_type") != "code" or scope not in ("snsapi_base", "snsapi_userinfo"):
        return PlainTextResponse("Scope 参数错误或没有 Scope 权限", status_code=400)
    openid = _browser_openid(request, sim)
    code = sim.issue_code(openid, scope)
    target = _with_query(redirect_uri, {"code": code, "state": query.get("state", "")})
    response = RedirectResponse(target, status_code=302)
    response.set_cookie(OPENID_COOKIE, openid, httponly=True, samesite="lax")
    return response


async def get_oauth_token(request: Request) -> Response:
    query, sim = request.query_params, _sim(request)
    if (injected := await _injected(request, "oauth")) is not None:
        return injected
    refused = _app_credentials_error(sim.config, query.get("appid", ""), query.get("secret", ""))
    if refused is not None:
        return _error(refused)
    if query.get("grant_type") != "authorization_code":
        return _error((40002, "invalid grant_type"))
    if not query.get("code"):
        return _error((41008, "missing code"))
    redeemed = sim.redeem_code(query["code"])
    if isinstance(redeemed, tuple):
        return _error(redeemed)
    return JSONResponse(
        {
            "access_token": secrets.token_urlsafe(64),
            "expires_in": 7200,
            "refresh_token": secrets.token_urlsafe(64),
            "openid": redeemed.openid,
            "scope": redeemed.scope,
        }
    )


# -- the simulator's own routes --------------------------------------------------------------------


class InteractionIn(BaseModel):
    openid: str = Field(min_length=1, max_length=64)
    kind: InteractionKind
    age_s: float = Field(default=0, ge=0, description="As if the action happened this long ago")


class FaultIn(BaseModel):
    endpoint: FaultEndpoint
    mode: FaultMode
    count: int = Field(default=1, ge=1)
    delay_s: float = Field(default=0, ge=0, le=60)


class ClockIn(BaseModel):
    advance_s: float = Field(ge=0)


def _add_sim_routes(app: FastAPI) -> None:
    @app.post("/sim/interactions", status_code=204)
    def record_interaction(body: InteractionIn, request: Request) -> None:
        _sim(request).record_interaction(body.openid, body.kind, age_s=body.age_s)

    @app.get("/sim/inbox")
    def inbox(openid: str, request: Request) -> dict[str, Any]:
        return {"openid": openid, "messages": _sim(request).inbox(openid)}

    @app.post("/sim/faults", status_code=204)
    def add_fault(body: FaultIn, request: Request) -> None:
        _sim(request).add_fault(body.endpoint, body.mode, count=body.count, delay_s=body.delay_s)

    @app.post("/sim/clock", status_code=204)
    def advance_clock(body: ClockIn, request: Request) -> None:
        _sim(request).advance_clock(body.advance_s)

    @app.get("/sim/stats")
    def stats(request: Request) -> dict[str, Any]:
        return _sim(request).stats()

    @app.post("/sim/reset", status_code=204)
    def reset(request: Request) -> None:
        _sim(request).reset()


def create_simulator_app(config: SimulatorConfig) -> FastAPI:
    if config.callback_url is not None and config.token is None:
        raise ValueError("callback_url needs the token: WeChat signs every push with it")
    state = SimulatorState(config)
    sender = _CallbackSender(config, state) if config.callback_url is not None else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if sender is not None:
            sender.close()

    app = FastAPI(title="WeChat API simulator", lifespan=lifespan, openapi_url=None)
    app.state.sim = state
    app.state.sim_callbacks = sender
    app.add_api_route("/cgi-bin/token", get_token, methods=["GET"])
    app.add_api_route("/cgi-bin/ticket/getticket", get_ticket, methods=["GET"])
    app.add_api_route("/cgi-bin/message/custom/send", post_custom_send, methods=["POST"])
    app.add_api_route("/cgi-bin/message/template/send", post_template_send, methods=["POST"])
    app.add_api_route("/connect/oauth2/authorize", get_authorize, methods=["GET"])
    app.add_api_route("/sns/oauth2/access_token", get_oauth_token, methods=["GET"])
    _add_sim_routes(app)
    return app


def simulator_config_from_settings(
    settings: TianfuSettings, *, callback_url: str | None
) -> SimulatorConfig:
    """A simulator that accepts the local .env's credentials, so `tianfu serve` (or `make run`)
    and `tianfu sim wechat` talk to each other without further configuration."""
    wechat = settings.wechat
    if not wechat.appid or wechat.appsecret is None:
        raise ConfigurationError(
            "the WeChat simulator needs TIANFU_WECHAT_APPID and TIANFU_WECHAT_APPSECRET "
            "(tianfu dev-env writes them)"
        )
    token = wechat.token.get_secret_value() if wechat.token is not None else None
    aes_key = wechat.encoding_aes_key
    return SimulatorConfig(
        appid=wechat.appid,
        appsecret=wechat.appsecret.get_secret_value(),
        callback_url=callback_url,
        token=token,
        encoding_aes_key=aes_key.get_secret_value() if aes_key is not None else None,
        account_id=wechat.account_id or SimulatorConfig.account_id,
    )


def serve_simulator(*, host: str, port: int, config: SimulatorConfig) -> None:
    # No access log: the query strings carry the AppSecret and tokens (spec §9.13).
    uvicorn.run(create_simulator_app(config), host=host, port=port, access_log=False)
