"""The WeChat Official Account API (spec §8): the access token and jsapi_ticket every worker
shares through the database, customer-service and template messages, and OAuth2 web authorization.

One method per remote call; every call has the timeout of the settings. WeChat answers errors with
HTTP 200 and `{"errcode", "errmsg"}`; they become `WeChatApiError` and its subclasses here. Errors
raised for HTTP or transport failures use errcode -1 (retryable, like WeChat's "system busy") or the
HTTP status (others). No message, log line or repr carries the AppSecret or a token.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from sqlalchemy import CursorResult, Result, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from lbs.config import WeChatSettings
from lbs.models import TemplateSend, WeChatCredential
from tianfu.db import upsert_insert
from tianfu.orm import utcnow

REFRESH_MARGIN_S = 300  # a credential with less life than this left is refreshed
# A refreshing worker holds the lease this long; one fetch takes at most api_timeout_s (<= 30 s,
# 3 s by default). If the holder dies, another worker takes over once the lease has passed.
LEASE_S = 10
WAIT_S = LEASE_S + 5.0  # how long to wait for another worker's refresh before giving up
POLL_S = 0.05
TEMPLATE_VALUE_MAX_CHARS = 20  # WeChat truncates longer fields since 2023-05 (spec §8)
ERROR_TEXT_MAX_CHARS = 255  # TemplateSend.error

UNAVAILABLE = -1  # WeChat's "system busy"; also used here for timeouts and connection failures
TOKEN_REJECTED = frozenset({40001, 40014, 42001})  # invalid, malformed, expired access_token
QUOTA_ERRCODES = frozenset({45015, 45047})  # customer-service window expired, quota exceeded
OAUTH_CODE_ERRCODES = frozenset({40029, 40163})  # invalid (or expired) code, code already used
_STATE_RE = re.compile(r"[A-Za-z0-9]{0,128}")  # what WeChat allows in the OAuth state parameter
_OAUTH_SCOPES = frozenset({"snsapi_base", "snsapi_userinfo"})


class WeChatApiError(Exception):
    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"WeChat API error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class WeChatQuotaError(WeChatApiError):
    """45015/45047: the user's customer-service window is closed or used up; the caller decides
    (wait for the user's next action, or fall back to another channel)."""


class WeChatUnavailableError(WeChatApiError):
    """Timeouts, connection failures, 5xx, errcode -1: retryable."""


class WeChatOAuthError(WeChatApiError):
    """40029/40163: the OAuth code is unknown, expired or already used."""


def _error_for(errcode: int, errmsg: str) -> WeChatApiError:
    if errcode == UNAVAILABLE:
        return WeChatUnavailableError(errcode, errmsg)
    if errcode in QUOTA_ERRCODES:
        return WeChatQuotaError(errcode, errmsg)
    if errcode in OAUTH_CODE_ERRCODES:
        return WeChatOAuthError(errcode, errmsg)
    return WeChatApiError(errcode, errmsg)


class _RedactSecretParams(logging.Filter):
    """httpx logs every request URL at INFO, and WeChat wants the AppSecret, tokens and OAuth codes
    in the query string (spec §9.13: never log them)."""

    _PARAM_RE = re.compile(r"(?<=[?&])(secret|access_token|code)=[^&\s\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._redact(arg) for arg in record.args)
        return True

    def _redact(self, arg: object) -> object:
        if isinstance(arg, httpx.URL | str):
            return self._PARAM_RE.sub(r"\1=***", str(arg))
        return arg


_REDACT_FILTER = _RedactSecretParams()
logging.getLogger("httpx").addFilter(_REDACT_FILTER)  # the same object: added once however imported


def _rowcount(result: Result[Any]) -> int:
    # An UPDATE's result is a CursorResult; Session.execute is typed with the general Result.
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


class _SharedCredential:
    """One credential row (`wechat_credentials`) that every worker reads and one refreshes.

    Fetching a new access token invalidates the previous one (spec §8), so workers must never
    refresh independently: the refresher is whoever wins a conditional UPDATE of the lease, and the
    others poll the row until the new value is there. Each step is its own short transaction that
    starts with its write, so SQLite's single writer waits (busy_timeout) instead of deadlocking.
    """

    def __init__(
        self, factory: sessionmaker[Session], name: str, fetch: Callable[[], tuple[str, int]]
    ) -> None:
        self._factory = factory
        self._name = name
        self._fetch = fetch

    def get(self) -> str:
        deadline = time.monotonic() + WAIT_S
        while True:
            value = self._read_fresh()
            if value is not None:
                return value
            if self._take_lease():
                return self._refresh()
            if time.monotonic() >= deadline:
                raise WeChatUnavailableError(
                    UNAVAILABLE, f"no fresh {self._kind} after waiting {WAIT_S:.0f} s for a refresh"
                )
            time.sleep(POLL_S)

    def invalidate(self, used: str) -> None:
        """Compare-and-clear: only the value that WeChat refused is dropped, so a worker holding a
        stale token cannot throw away the fresh one another worker has just stored."""
        with self._factory.begin() as session:
            session.execute(
                update(WeChatCredential)
                .where(WeChatCredential.name == self._name, WeChatCredential.value == used)
                .values(value=None, expires_at=None)
                .execution_options(synchronize_session=False)
            )

    @property
    def _kind(self) -> str:
        return self._name.partition(":")[0]

    def _read_fresh(self) -> str | None:
        with self._factory() as session:
            row = session.execute(
                select(WeChatCredential.value, WeChatCredential.expires_at).where(
                    WeChatCredential.name == self._name
                )
            ).one_or_none()
        if row is None or row.value is None or row.expires_at is None:
            return None
        if row.expires_at - utcnow() < timedelta(seconds=REFRESH_MARGIN_S):
            return None
        return str(row.value)

    def _take_lease(self) -> bool:
        now = utcnow()
        stale_before = now + timedelta(seconds=REFRESH_MARGIN_S)
        with self._factory.begin() as session:
            session.execute(
                upsert_insert(session.get_bind().dialect.name)(WeChatCredential)
                .values(name=self._name, updated_at=now)
                .on_conflict_do_nothing(index_elements=[WeChatCredential.name])
            )
            # The value condition too: a worker that read a stale row just before another
            # finished its refresh must not start a second one (which would rotate the new token).
            result = session.execute(
                update(WeChatCredential)
                .where(
                    WeChatCredential.name == self._name,
                    or_(
                        WeChatCredential.refreshing_until.is_(None),
                        WeChatCredential.refreshing_until < now,
                    ),
                    or_(
                        WeChatCredential.value.is_(None),
                        WeChatCredential.expires_at.is_(None),
                        WeChatCredential.expires_at < stale_before,
                    ),
                )
                .values(refreshing_until=now + timedelta(seconds=LEASE_S))
                .execution_options(synchronize_session=False)
            )
            return _rowcount(result) == 1

    def _refresh(self) -> str:
        try:
            value, expires_in_s = self._fetch()
        except BaseException:
            self._end_lease({})  # let the next worker try at once
            raise
        expires_at = utcnow() + timedelta(seconds=expires_in_s)
        self._end_lease({"value": value, "expires_at": expires_at})
        return value

    def _end_lease(self, changes: dict[str, Any]) -> None:
        changes = {**changes, "refreshing_until": None}
        with self._factory.begin() as session:
            session.execute(
                update(WeChatCredential)
                .where(WeChatCredential.name == self._name)
                .values(**changes)
                .execution_options(synchronize_session=False)
            )


class WeChatClient:
    def __init__(
        self,
        settings: WeChatSettings,
        session_factory: sessionmaker[Session],
        *,
        http: httpx.Client | None = None,
    ) -> None:
        self._settings = settings
        self._timeout = httpx.Timeout(settings.api_timeout_s)
        self._http = http if http is not None else httpx.Client(timeout=self._timeout)
        self._owns_http = http is None
        appid = settings.appid or ""
        self._token = _SharedCredential(
            session_factory, f"access_token:{appid}", self._fetch_access_token
        )
        self._ticket = _SharedCredential(
            session_factory, f"jsapi_ticket:{appid}", self._fetch_ticket
        )

    def __repr__(self) -> str:
        return f"WeChatClient(appid={self._settings.appid!r}, api={self._settings.api_base_url!r})"

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> WeChatClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- credentials -------------------------------------------------------------------------

    def access_token(self) -> str:
        self._app_credentials()  # fail before touching the shared row
        return self._token.get()

    def invalidate_access_token(self, used: str) -> None:
        """For callers that used the token elsewhere and had it refused (40001/42001)."""
        self._token.invalidate(used)

    def jsapi_ticket(self) -> str:
        self._app_credentials()
        return self._ticket.get()

    def _fetch_access_token(self) -> tuple[str, int]:
        appid, secret = self._app_credentials()
        answer = self._request(
            "GET",
            "/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": appid, "secret": secret},
        )
        return _text_field(answer, "access_token"), _int_field(answer, "expires_in")

    def _fetch_ticket(self) -> tuple[str, int]:
        answer = self._call_with_token("GET", "/cgi-bin/ticket/getticket", params={"type": "jsapi"})
        return _text_field(answer, "ticket"), _int_field(answer, "expires_in")

    def _app_credentials(self) -> tuple[str, str]:
        # 41002/41004 are WeChat's own codes for a missing appid/secret.
        if not self._settings.appid:
            raise WeChatApiError(41002, "appid missing: set TIANFU_WECHAT_APPID")
        if self._settings.appsecret is None:
            raise WeChatApiError(41004, "appsecret missing: set TIANFU_WECHAT_APPSECRET")
        return self._settings.appid, self._settings.appsecret.get_secret_value()

    # -- customer-service messages (spec §8: only within a window opened by the user) --------

    def send_custom_text(self, openid: str, content: str) -> None:
        self._send_custom({"touser": openid, "msgtype": "text", "text": {"content": content}})

    def send_custom_news(
        self, openid: str, *, title: str, description: str, url: str, pic_url: str = ""
    ) -> None:
        # Exactly one article: WeChat refuses more in customer-service messages since 2018-10.
        article = {"title": title, "description": description, "url": url, "picurl": pic_url}
        self._send_custom({"touser": openid, "msgtype": "news", "news": {"articles": [article]}})

    def _send_custom(self, body: Mapping[str, Any]) -> None:
        self._call_with_token("POST", "/cgi-bin/message/custom/send", body=body)

    # -- template messages ---------------------------------------------------------------------

    def send_template(
        self,
        session: Session,
        *,
        openid: str,
        template_id: str,
        data: Mapping[str, str],
        url: str | None,
        client_msg_id: str,
    ) -> TemplateSend:
        """Send once per client_msg_id.

        The token is made fresh before this session is touched, and WeChat is called before it
        writes: a refresh commits through another connection, which on SQLite would wait on this
        session's write lock, or invalidate its read snapshot. (A caller on SQLite that has already
        read in this transaction can still meet that on a rare mid-call refresh.)

        A refusal is stored as "failed" and returned; a retryable failure raises
        WeChatUnavailableError with nothing stored, and retrying with the same client_msg_id is
        safe because WeChat deduplicates it too (spec §8)."""
        self.access_token()
        existing = _template_by_client_msg_id(session, client_msg_id)
        if existing is not None and existing.status not in ("pending", "failed"):
            return existing
        body = _template_body(openid, template_id, data, url, client_msg_id)
        try:
            answer = self._call_with_token("POST", "/cgi-bin/message/template/send", body=body)
        except WeChatUnavailableError:
            raise
        except WeChatApiError as exc:
            row = _template_row(session, body)
            row.status, row.error = "failed", f"{exc.errcode}: {exc.errmsg}"[:ERROR_TEXT_MAX_CHARS]
        else:
            row = _template_row(session, body)
            if row.status in ("pending", "failed"):  # not already recorded by a concurrent send
                row.wechat_msgid, row.status, row.error = _int_field(answer, "msgid"), "sent", None
        session.flush()
        return row

    # -- OAuth2 web authorization (H5 pages) ------------------------------------------------------

    def oauth_authorize_url(
        self, *, redirect_uri: str, state: str, scope: str = "snsapi_base"
    ) -> str:
        if scope not in _OAUTH_SCOPES:
            raise ValueError(f"scope must be one of {sorted(_OAUTH_SCOPES)}")
        if not _STATE_RE.fullmatch(state):
            raise ValueError("state must be at most 128 letters or digits (WeChat's rule)")
        appid, _ = self._app_credentials()
        # WeChat wants these parameters in this order, and the fragment, or it shows an error page.
        query = urlencode(
            [
                ("appid", appid),
                ("redirect_uri", redirect_uri),
                ("response_type", "code"),
                ("scope", scope),
                ("state", state),
            ],
            quote_via=quote,
            safe="",
        )
        return f"{self._settings.open_base_url}/connect/oauth2/authorize?{query}#wechat_redirect"

    def oauth_openid(self, code: str) -> str:
        appid, secret = self._app_credentials()
        answer = self._request(
            "GET",
            "/sns/oauth2/access_token",
            params={
                "appid": appid,
                "secret": secret,
                "code": code,
                "grant_type": "authorization_code",
            },
        )
        return _text_field(answer, "openid")

    # -- HTTP --------------------------------------------------------------------------------------

    def _call_with_token(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        def attempt(token: str) -> dict[str, Any]:
            query = {**(params or {}), "access_token": token}
            return self._request(method, path, params=query, body=body)

        token = self.access_token()
        try:
            return attempt(token)
        except WeChatApiError as exc:
            if exc.errcode not in TOKEN_REJECTED:
                raise
        # Our token was rotated out (another fetch, e.g. from the console's debug tool) or has
        # expired early: drop it if it is still the cached one, get a fresh one, try once more.
        self._token.invalidate(token)
        return attempt(self.access_token())

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str],
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        content = None
        headers = {}
        if body is not None:
            # Chinese text as UTF-8, not \\u escapes: WeChat counts and shows characters as sent.
            content = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json; charset=utf-8"
        try:
            response = self._http.request(
                method,
                self._settings.api_base_url + path,
                params=dict(params),
                content=content,
                headers=headers,
                timeout=self._timeout,
            )
        except httpx.TimeoutException as exc:
            # `from None`: the httpx exception holds the request, whose URL holds the secrets.
            raise WeChatUnavailableError(
                UNAVAILABLE,
                f"{type(exc).__name__} after {self._settings.api_timeout_s} s on {path}",
            ) from None
        except httpx.TransportError as exc:
            raise WeChatUnavailableError(UNAVAILABLE, f"{type(exc).__name__} on {path}") from None
        return _answer(response, path)


def _answer(response: httpx.Response, path: str) -> dict[str, Any]:
    if response.status_code >= 500:
        raise WeChatUnavailableError(UNAVAILABLE, f"HTTP {response.status_code} on {path}")
    if response.status_code != 200:
        raise WeChatApiError(response.status_code, f"HTTP {response.status_code} on {path}")
    try:
        # WeChat often labels its JSON text/plain, so the body is parsed whatever the type says.
        answer = json.loads(response.content)
    except ValueError:
        raise WeChatUnavailableError(UNAVAILABLE, f"a body that is not JSON on {path}") from None
    if not isinstance(answer, dict):
        raise WeChatUnavailableError(UNAVAILABLE, f"a JSON body that is not an object on {path}")
    errcode = answer.get("errcode", 0)
    if errcode != 0:
        code = errcode if isinstance(errcode, int) else UNAVAILABLE
        raise _error_for(code, str(answer.get("errmsg", "")))
    return answer


def _text_field(answer: Mapping[str, Any], key: str) -> str:
    value = answer.get(key)
    if not isinstance(value, str) or not value:
        raise WeChatUnavailableError(UNAVAILABLE, f"answer without {key}")
    return value


def _int_field(answer: Mapping[str, Any], key: str) -> int:
    value = answer.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise WeChatUnavailableError(UNAVAILABLE, f"answer without {key}")
    return value


# -- template message rows --------------------------------------------------------------------


def _template_body(
    openid: str, template_id: str, data: Mapping[str, str], url: str | None, client_msg_id: str
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "touser": openid,
        "template_id": template_id,
        "client_msg_id": client_msg_id,
        # Cut here rather than let WeChat cut silently, so the row shows what the user saw.
        "data": {key: {"value": value[:TEMPLATE_VALUE_MAX_CHARS]} for key, value in data.items()},
    }
    if url is not None:
        body["url"] = url
    return body


def _template_by_client_msg_id(session: Session, client_msg_id: str) -> TemplateSend | None:
    return session.scalars(
        select(TemplateSend)
        .where(TemplateSend.client_msg_id == client_msg_id)
        .execution_options(populate_existing=True)
    ).one_or_none()


def _template_row(session: Session, body: Mapping[str, Any]) -> TemplateSend:
    """The row for this client_msg_id, inserted if missing. ON CONFLICT DO NOTHING: a concurrent
    send of the same id may have inserted it since we looked (the unique key decides)."""
    session.execute(
        upsert_insert(session.get_bind().dialect.name)(TemplateSend)
        .values(
            openid=body["touser"],
            template_id=body["template_id"],
            client_msg_id=body["client_msg_id"],
            payload={"data": body["data"], "url": body.get("url")},
            status="pending",
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=[TemplateSend.client_msg_id])
    )
    row = _template_by_client_msg_id(session, body["client_msg_id"])
    assert row is not None  # inserted just now or by the concurrent send
    return row


def record_template_result(session: Session, *, wechat_msgid: int, status: str) -> bool:
    """Apply a TEMPLATESENDJOBFINISH event (spec §4: `MsgID`, `Status` verbatim). False if the
    msgid is not ours. Idempotent: a repeated event keeps the first finished_at."""
    row = session.scalars(
        select(TemplateSend).where(TemplateSend.wechat_msgid == wechat_msgid)
    ).one_or_none()
    if row is None:
        return False
    row.status = status[:64]
    if row.finished_at is None:
        row.finished_at = utcnow()
    session.flush()
    return True
