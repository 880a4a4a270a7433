"""H5 sessions: WeChat OAuth2 snsapi_base through the simulator on loopback, the signed cookie,
its idle timeout, and the signed `state` that brings the user back (never to another host).

The app runs in process (httpx ASGITransport). No database is involved in logging in (the
OAuth code exchange needs no access token), so these tests use one unmigrated SQLite file.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from itsdangerous import URLSafeTimedSerializer
from pydantic import SecretStr

from lbs.h5_session import (
    DEFAULT_NEXT_PATH,
    OAUTH_STATE_TTL_S,
    SESSION_COOKIE,
    OAuthStateInvalidError,
    WeChatUser,
    _pack_state,
    is_local_path,
    oauth_state,
    read_oauth_state,
    read_session_value,
    session_value,
)
from lbs.links import NearbyPoint, nearby_token
from lbs.pages import mask_openid
from lbs.simulator import SimulatorConfig
from tests.http import asgi_client
from tests.lbs.live_app import h5_app
from tests.lbs.sim_helpers import RunningSimulator, running_simulator
from tianfu.settings import TianfuSettings, load_settings

pytestmark = pytest.mark.anyio

APPID = "wx5e55105e55105e55"
APPSECRET = "5e55105e55105e55105e55105e55105e"
SECRET_KEY = "h5-session-tests-secret-key-0123456789abcdef"
OPENID = "oH5SessionTestUser0000000001"
BASE = "http://tianfu.test"  # the in-process client's base URL, and the app's public URL


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    """The app's H5 clock (app.state.h5_clock): moves only when the test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_simulator(SimulatorConfig(appid=APPID, appsecret=APPSECRET)) as running:
        yield running


def make_settings(
    sim: RunningSimulator, tmp_path: Path, *, public_base_url: str = BASE
) -> TianfuSettings:
    return load_settings(
        database_url=f"sqlite:///{tmp_path / 'h5.sqlite3'}",
        secret_key=SECRET_KEY,
        public_base_url=public_base_url,
        wechat=sim.wechat_settings(),
    )


def with_reuse_routes(app: FastAPI) -> FastAPI:
    # How another domain (coupons, orders) uses the session: just the dependency.
    other = APIRouter()

    @other.get("/h5/test/coupons")
    @other.get("/h5/test/券")
    def coupons(openid: WeChatUser) -> dict[str, str]:
        return {"openid": openid}

    @other.post("/h5/test/claim")
    def claim(openid: WeChatUser) -> dict[str, str]:
        return {"openid": openid}

    app.include_router(other)
    return app


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(sim: RunningSimulator, tmp_path: Path) -> TianfuSettings:
    return make_settings(sim, tmp_path)


@pytest.fixture
async def http(settings: TianfuSettings, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    app = with_reuse_routes(h5_app(settings))
    app.state.h5_clock = clock
    async for client in asgi_client(app):
        yield client
    app.state.wechat_client.close()  # its pooled connection to the simulator


def other_key(settings: TianfuSettings) -> TianfuSettings:
    return settings.model_copy(update={"secret_key": SecretStr("another-key-" + "0" * 32)})


def set_cookies(response: httpx.Response, name: str = SESSION_COOKIE) -> list[dict[str, str]]:
    """The Set-Cookie headers for `name`, as {"value": …, "<attribute>": …} (attributes lower)."""
    found = []
    for header in response.headers.get_list("set-cookie"):
        first, *attributes = [part.strip() for part in header.split(";")]
        key, _, value = first.partition("=")
        if key != name:
            continue
        parsed = {"value": value}
        for attribute in attributes:
            attr_name, _, attr_value = attribute.partition("=")
            parsed[attr_name.lower()] = attr_value
        found.append(parsed)
    return found


def with_sim_user(authorize_url: str, openid: str) -> str:
    # The simulator lets a test say who is at the phone; WeChat itself knows from the app.
    parts = urlsplit(authorize_url)
    query = f"{parts.query}&{urlencode({'sim_openid': openid})}"
    return urlunsplit(parts._replace(query=query, fragment=""))


async def wechat_authorize(authorize_url: str, openid: str = OPENID) -> str:
    """What WeChat does with our authorize URL: a 302 back to our callback with code and state."""
    async with httpx.AsyncClient() as wechat:
        answer = await wechat.get(with_sim_user(authorize_url, openid))
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


async def log_in(
    http: httpx.AsyncClient, path: str = "/h5/me", openid: str = OPENID
) -> httpx.Response:
    """From a page that needs the user to the callback's answer (not followed)."""
    first = await http.get(path)
    assert first.status_code == 302, first.text
    callback = await wechat_authorize(first.headers["location"], openid)
    return await http.get(callback)


async def get_with_cookie(http: httpx.AsyncClient, path: str, value: str) -> httpx.Response:
    # Only the cookie the test names: the client's own jar would otherwise send its newest one.
    http.cookies.clear()
    return await http.get(path, headers={"Cookie": f"{SESSION_COOKIE}={value}"})


# -- the OAuth round trip --------------------------------------------------------------------


async def test_page_without_session_redirects_to_wechat_authorize(
    http: httpx.AsyncClient, sim: RunningSimulator, settings: TianfuSettings
) -> None:
    response = await http.get("/h5/me", params={"tab": "优惠券"})
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(f"{sim.base_url}/connect/oauth2/authorize?")
    assert location.endswith("#wechat_redirect")
    query = parse_qs(urlsplit(location).query)
    assert query["appid"] == [APPID]
    assert query["redirect_uri"] == [f"{BASE}/h5/oauth/callback"]
    assert query["scope"] == ["snsapi_base"]
    assert query["response_type"] == ["code"]
    (state,) = query["state"]
    assert state.isalnum()  # WeChat drops other states,
    assert len(state) <= 128  # and longer ones
    assert read_oauth_state(settings, state) == "/h5/me?tab=%E4%BC%98%E6%83%A0%E5%88%B8"


async def test_login_sets_the_cookie_and_returns_to_the_page(http: httpx.AsyncClient) -> None:
    callback = await log_in(http, "/h5/test/%E5%88%B8?from=menu")
    assert callback.status_code == 302
    assert callback.headers["location"] == "/h5/test/%E5%88%B8?from=menu"
    (cookie,) = set_cookies(callback)
    assert "httponly" in cookie
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/"
    assert cookie["max-age"] == "600"
    assert "secure" not in cookie  # http public URL: a Secure cookie would never come back

    page = await http.get("/h5/test/coupons")
    assert page.json() == {"openid": OPENID}
    me = await http.get("/h5/me")
    assert me.status_code == 200
    assert mask_openid(OPENID) in me.text
    assert OPENID not in me.text
    assert "我的优惠券" in me.text


async def test_cookie_is_secure_on_an_https_public_url(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    settings = make_settings(sim, tmp_path, public_base_url="https://tianfu.example")
    app = h5_app(settings)
    async for http in asgi_client(app):
        first = await http.get("/h5/me")
        redirect_uri = parse_qs(urlsplit(first.headers["location"]).query)["redirect_uri"]
        assert redirect_uri == ["https://tianfu.example/h5/oauth/callback"]
        callback = await wechat_authorize(first.headers["location"])
        # WeChat sends the browser to the public https URL; here it reaches the same app.
        answer = await http.get(urlsplit(callback)._replace(scheme="", netloc="").geturl())
        (cookie,) = set_cookies(answer)
        assert "secure" in cookie
        assert "httponly" in cookie
        assert cookie["samesite"] == "Lax"
    app.state.wechat_client.close()


async def test_a_bad_code_is_a_friendly_400_page(
    http: httpx.AsyncClient, settings: TianfuSettings, clock: FakeClock
) -> None:
    state = oauth_state(settings, "/h5/me", clock=clock)
    response = await http.get("/h5/oauth/callback", params={"code": "nonsense", "state": state})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "登录未完成" in response.text
    assert 'href="/h5/me"' in response.text  # a way to try again
    assert not set_cookies(response)


async def test_a_used_code_is_refused(http: httpx.AsyncClient) -> None:
    first = await http.get("/h5/me")
    callback = await wechat_authorize(first.headers["location"])
    assert (await http.get(callback)).status_code == 302
    http.cookies.clear()
    again = await http.get(callback)
    assert again.status_code == 400
    assert "登录未完成" in again.text


async def test_a_missing_code_is_a_400_page(
    http: httpx.AsyncClient, settings: TianfuSettings, clock: FakeClock
) -> None:
    state = oauth_state(settings, "/", clock=clock)
    response = await http.get("/h5/oauth/callback", params={"state": state})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")


async def test_wechat_unavailable_at_the_exchange_is_a_503_page(
    http: httpx.AsyncClient, sim: RunningSimulator
) -> None:
    first = await http.get("/h5/me")
    callback = await wechat_authorize(first.headers["location"])
    sim.state.add_fault("oauth", "system_busy")
    response = await http.get(callback)
    assert response.status_code == 503
    assert "稍后再试" in response.text


@pytest.mark.parametrize(
    "state",
    ["", "not-base32!", "A" * 40, "A" * 129],
    ids=["missing", "not-base32", "unsigned", "too-long"],
)
async def test_a_bad_state_is_a_403_page(http: httpx.AsyncClient, state: str) -> None:
    response = await http.get("/h5/oauth/callback", params={"code": "whatever", "state": state})
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "链接已失效" in response.text
    assert "Traceback" not in response.text


async def test_a_tampered_or_expired_state_is_refused(
    http: httpx.AsyncClient, settings: TianfuSettings, clock: FakeClock
) -> None:
    state = oauth_state(settings, "/h5/me", clock=clock)
    flipped = state[:-3] + ("A" if state[-3] != "A" else "B") + state[-2:]
    foreign = oauth_state(other_key(settings), "/h5/me", clock=clock)
    for bad in (flipped, foreign):
        response = await http.get("/h5/oauth/callback", params={"code": "x", "state": bad})
        assert response.status_code == 403
    clock.advance(OAUTH_STATE_TTL_S + 1)
    response = await http.get("/h5/oauth/callback", params={"code": "x", "state": state})
    assert response.status_code == 403


# -- no open redirect ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "https://evil.example/",
        "//evil.example/h5/me",
        "/\\evil.example",
        "\\\\evil.example",
        "/h5/me\r\nLocation: https://evil.example",
        "/h5/ me",
        "h5/me",
        "",
    ],
)
async def test_a_state_naming_another_host_is_refused(
    http: httpx.AsyncClient, settings: TianfuSettings, clock: FakeClock, path: str
) -> None:
    assert not is_local_path(path)
    # Even a state we signed ourselves (a bug upstream) cannot send the browser elsewhere.
    signed = _pack_state(settings, path, issued_at=clock.now)
    with pytest.raises(OAuthStateInvalidError, match=r"local path|malformed"):
        read_oauth_state(settings, signed, clock=clock)
    response = await http.get("/h5/oauth/callback", params={"code": "x", "state": signed})
    assert response.status_code == 403
    assert "location" not in response.headers
    # And oauth_state never signs one: the login comes back to a page of ours.
    assert read_oauth_state(settings, oauth_state(settings, path)) == DEFAULT_NEXT_PATH


def test_a_long_path_loses_its_query_rather_than_the_state() -> None:
    settings = load_settings(secret_key=SECRET_KEY)
    long_query = "/h5/test/coupons?" + "x" * 200
    state = oauth_state(settings, long_query)
    assert len(state) <= 128
    assert read_oauth_state(settings, state) == "/h5/test/coupons"
    with pytest.raises(OAuthStateInvalidError):
        read_oauth_state(settings, state.lower())


# -- the cookie ------------------------------------------------------------------------------


async def test_a_tampered_cookie_is_no_session(
    http: httpx.AsyncClient, settings: TianfuSettings
) -> None:
    (cookie,) = set_cookies(await log_in(http))
    good = cookie["value"]
    link_token = nearby_token(settings, NearbyPoint(30.6574, 104.0661))  # our key, other salt
    forged = [
        good[:-2] + ("AA" if good[-2:] != "AA" else "BB"),
        session_value(other_key(settings), "oSomeoneElse"),
        link_token,
        URLSafeTimedSerializer(SECRET_KEY).dumps({"openid": "oNoSalt"}),
        "",
    ]
    assert (await get_with_cookie(http, "/h5/me", good)).status_code == 200
    for value in forged:
        response = await get_with_cookie(http, "/h5/me", value)
        assert response.status_code == 302, value
        assert not set_cookies(response)  # nothing renewed


def test_a_signed_cookie_without_an_openid_is_no_session() -> None:
    settings = load_settings(secret_key=SECRET_KEY)
    assert read_session_value(settings, session_value(settings, "oA")) == "oA"
    assert read_session_value(settings, session_value(settings, "")) is None


async def test_idle_sessions_time_out_and_requests_renew_them(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    (login,) = set_cookies(await log_in(http))
    clock.advance(500)
    first = await get_with_cookie(http, "/h5/me", login["value"])
    assert first.status_code == 200
    (renewed,) = set_cookies(first)
    assert renewed["value"] != login["value"]
    assert renewed["max-age"] == "600"

    clock.advance(500)  # 1000 s after the login, 500 s after the last request
    second = await get_with_cookie(http, "/h5/me", renewed["value"])
    assert second.status_code == 200
    (latest,) = set_cookies(second)
    assert (await get_with_cookie(http, "/h5/me", login["value"])).status_code == 302

    clock.advance(601)  # idle for longer than the window
    expired = await get_with_cookie(http, "/h5/me", latest["value"])
    assert expired.status_code == 302
    assert "/connect/oauth2/authorize?" in expired.headers["location"]


async def test_any_request_renews_the_session(http: httpx.AsyncClient, clock: FakeClock) -> None:
    (login,) = set_cookies(await log_in(http))
    clock.advance(300)
    response = await get_with_cookie(http, "/livez", login["value"])
    assert response.status_code == 200
    assert len(set_cookies(response)) == 1


async def test_a_new_login_replaces_the_session_with_one_cookie(
    http: httpx.AsyncClient, settings: TianfuSettings
) -> None:
    (old,) = set_cookies(await log_in(http, openid="oFirstUser00000000000000001"))
    http.cookies.clear()
    first = await http.get("/h5/me")
    callback = await wechat_authorize(first.headers["location"], "oSecondUser0000000000000001")
    response = await http.get(callback, headers={"Cookie": f"{SESSION_COOKIE}={old['value']}"})
    # The middleware would renew the old session; the callback's new one must be the only one.
    (cookie,) = set_cookies(response)
    assert read_session_value(settings, cookie["value"]) == "oSecondUser0000000000000001"


async def test_non_get_requests_without_session_get_401_json(http: httpx.AsyncClient) -> None:
    response = await http.post("/h5/test/claim")
    assert response.status_code == 401
    assert response.json()["error"] == "wechat_login_required"
    await log_in(http)
    assert (await http.post("/h5/test/claim")).json() == {"openid": OPENID}
