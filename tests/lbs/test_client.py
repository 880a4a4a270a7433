"""WeChatClient against the simulator over loopback, with its credential cache in a real database
of each backend (committed: the cache is shared through it, as between workers)."""

from __future__ import annotations

import logging
import multiprocessing
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from lbs.client import (
    WeChatApiError,
    WeChatClient,
    WeChatOAuthError,
    WeChatQuotaError,
    WeChatUnavailableError,
    record_template_result,
)
from lbs.config import WeChatSettings, decode_encoding_aes_key
from lbs.models import TemplateSend, WeChatCredential
from lbs.simulator import SimulatorConfig
from lbs.wxcrypto import WXBizMsgCrypt
from tests.conftest import PostgresDatabases, new_database_url
from tests.http import free_port
from tests.lbs.sim_helpers import PushReceiver, RunningSimulator, running_simulator, serving
from tianfu import migrate
from tianfu.db import create_db_engine, make_session_factory, session_scope
from tianfu.orm import utcnow

APPSECRET = "0123456789abcdef0123456789abcdef"
TOKEN = "ClientTestToken2026"
AES_KEY = "ClientTestEncodingAESKey0123456789abcdefXYZ"
USER = "oClientTestUser0000000000001"
NOTICE = {
    "Type": "消费",
    "Money": "¥128.00",
    "Left": "可用余额 ¥1,024.00，如有疑问请致电 95588 咨询",
}


def migrated_url(url: str) -> str:
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def factory(
    backend: str, tmp_path_factory: pytest.TempPathFactory, postgres_databases: PostgresDatabases
) -> Iterator[sessionmaker[Session]]:
    url = new_database_url(backend, tmp_path_factory.mktemp("wechat-client"), postgres_databases)
    engine = create_db_engine(migrated_url(url))
    yield make_session_factory(engine)
    engine.dispose()


def sim_config(**overrides: Any) -> SimulatorConfig:
    # A new AppID per test: the cache rows are per AppID, so tests share the database safely.
    return SimulatorConfig(appid="wx" + secrets.token_hex(8), appsecret=APPSECRET, **overrides)


@pytest.fixture
def sim() -> Iterator[RunningSimulator]:
    with running_simulator(sim_config()) as running:
        yield running


@pytest.fixture
def client(sim: RunningSimulator, factory: sessionmaker[Session]) -> Iterator[WeChatClient]:
    with WeChatClient(sim.wechat_settings(), factory) as wechat:
        yield wechat


def cached(factory: sessionmaker[Session], sim: RunningSimulator) -> WeChatCredential | None:
    with factory() as session:
        return session.get(WeChatCredential, f"access_token:{sim.config.appid}")


def set_expiry(factory: sessionmaker[Session], sim: RunningSimulator, left_s: int) -> None:
    with factory.begin() as session:
        session.execute(
            update(WeChatCredential)
            .where(WeChatCredential.name == f"access_token:{sim.config.appid}")
            .values(expires_at=utcnow() + timedelta(seconds=left_s))
        )


# -- the shared access token ---------------------------------------------------------------------


def test_the_token_is_fetched_once_and_shared_by_every_client(
    sim: RunningSimulator, factory: sessionmaker[Session], client: WeChatClient
) -> None:
    token = client.access_token()
    assert client.access_token() == token
    with WeChatClient(sim.wechat_settings(), factory) as other_worker:
        assert other_worker.access_token() == token
    assert sim.state.token_fetches == 1
    row = cached(factory, sim)
    assert row is not None
    assert row.expires_at is not None
    assert row.refreshing_until is None
    assert timedelta(seconds=7190) < row.expires_at - utcnow() <= timedelta(seconds=7200)


def test_a_token_with_less_than_300_s_left_is_refreshed(
    sim: RunningSimulator, factory: sessionmaker[Session], client: WeChatClient
) -> None:
    first = client.access_token()
    set_expiry(factory, sim, 301)
    assert client.access_token() == first
    set_expiry(factory, sim, 299)
    assert client.access_token() != first
    assert sim.state.token_fetches == 2


def test_a_rotated_token_is_refetched_once_and_the_call_retried(
    sim: RunningSimulator, factory: sessionmaker[Session], client: WeChatClient
) -> None:
    first = client.access_token()
    sim.state.issue_access_token()  # someone else fetched one (e.g. the console's debug tool)
    sim.state.record_interaction(USER, "message")
    client.send_custom_text(USER, "您的优惠券已到账")
    assert sim.state.token_fetches == 3
    assert [m["text"]["content"] for m in sim.state.inbox(USER)] == ["您的优惠券已到账"]
    row = cached(factory, sim)
    assert row is not None
    assert row.value not in (None, first)


def test_a_token_expired_at_wechat_is_refetched(
    sim: RunningSimulator, client: WeChatClient
) -> None:
    client.access_token()
    sim.state.advance_clock(7200)  # WeChat's clock: 42001 although our cache thinks it fresh
    sim.state.record_interaction(USER, "click")
    client.send_custom_text(USER, "hi")
    assert sim.state.token_fetches == 2


def test_invalidating_drops_only_the_token_that_was_refused(
    sim: RunningSimulator, client: WeChatClient
) -> None:
    token = client.access_token()
    client.invalidate_access_token("a-token-another-worker-replaced-already")
    assert client.access_token() == token
    client.invalidate_access_token(token)
    assert client.access_token() != token
    assert sim.state.token_fetches == 2


def test_eight_threads_on_an_empty_cache_fetch_the_token_once(
    sim: RunningSimulator, factory: sessionmaker[Session]
) -> None:
    sim.state.add_fault("token", "delay", delay_s=0.3)  # a slow fetch: the others must wait
    barrier = threading.Barrier(8)

    def worker(_: int) -> str:
        with WeChatClient(sim.wechat_settings(), factory) as wechat:
            barrier.wait(timeout=10)
            return wechat.access_token()

    with ThreadPoolExecutor(8) as pool:
        tokens = list(pool.map(worker, range(8)))
    assert len(set(tokens)) == 1
    assert sim.state.token_fetches == 1


def _token_worker(database_url: str, settings: dict[str, str], barrier: Any, results: Any) -> None:
    """One OS process with its own engine and four threads (spawned: nothing inherited)."""
    engine = create_db_engine(database_url)
    try:
        with WeChatClient(WeChatSettings(**settings), make_session_factory(engine)) as wechat:
            barrier.wait(timeout=60)
            with ThreadPoolExecutor(4) as pool:
                results.put(list(pool.map(lambda _: wechat.access_token(), range(4))))
    except Exception as exc:
        results.put([f"error: {exc!r}"])
    finally:
        engine.dispose()


@pytest.mark.postgres_only
def test_two_processes_on_an_empty_cache_fetch_the_token_once(
    postgres_databases: PostgresDatabases,
) -> None:
    database_url = migrated_url(postgres_databases.create())
    with running_simulator(sim_config()) as sim:
        sim.state.add_fault("token", "delay", delay_s=0.3)
        settings = {"appid": sim.config.appid, "appsecret": APPSECRET, "api_base_url": sim.base_url}
        context = multiprocessing.get_context("spawn")
        barrier, results = context.Barrier(2), context.Queue()
        processes = [
            context.Process(target=_token_worker, args=(database_url, settings, barrier, results))
            for _ in range(2)
        ]
        for process in processes:
            process.start()
        tokens = [token for _ in processes for token in results.get(timeout=90)]
        for process in processes:
            process.join(timeout=30)
        assert sim.state.token_fetches == 1
    assert len(tokens) == 8
    assert len(set(tokens)) == 1, tokens


def test_the_jsapi_ticket_is_cached_like_the_token(
    sim: RunningSimulator, factory: sessionmaker[Session], client: WeChatClient
) -> None:
    ticket = client.jsapi_ticket()
    assert client.jsapi_ticket() == ticket
    with WeChatClient(sim.wechat_settings(), factory) as other_worker:
        assert other_worker.jsapi_ticket() == ticket
    assert (sim.state.ticket_fetches, sim.state.token_fetches) == (1, 1)


def test_a_failed_fetch_releases_the_lease(
    sim: RunningSimulator, factory: sessionmaker[Session]
) -> None:
    unreachable = sim.wechat_settings(api_base_url=f"http://127.0.0.1:{free_port()}")
    with WeChatClient(unreachable, factory) as wechat, pytest.raises(WeChatUnavailableError):
        wechat.access_token()
    row = cached(factory, sim)
    assert row is not None
    assert row.refreshing_until is None  # the next worker may try at once


# -- customer-service messages -----------------------------------------------------------------


def test_custom_messages_are_sent_as_utf8_json(
    sim: RunningSimulator, factory: sessionmaker[Session]
) -> None:
    bodies: list[bytes] = []

    def keep_body(request: httpx.Request) -> None:
        if request.url.path == "/cgi-bin/message/custom/send":
            bodies.append(request.content)

    sim.state.record_interaction(USER, "message")
    with (
        httpx.Client(timeout=3, event_hooks={"request": [keep_body]}) as http,
        WeChatClient(sim.wechat_settings(), factory, http=http) as wechat,
    ):
        wechat.send_custom_text(USER, "您好，附近有3家优惠")
        wechat.send_custom_news(
            USER, title="春熙路火锅 8折", description="距您 320 米", url="https://t.example/o/1"
        )
    assert "您好，附近有3家优惠".encode() in bodies[0]
    assert b"\\u" not in bodies[0]
    text, news = sim.state.inbox(USER)
    assert text["text"] == {"content": "您好，附近有3家优惠"}
    assert news["news"]["articles"] == [
        {
            "title": "春熙路火锅 8折",
            "description": "距您 320 米",
            "url": "https://t.example/o/1",
            "picurl": "",
        }
    ]


def test_custom_messages_outside_the_window_or_quota_raise_quota_errors(
    sim: RunningSimulator, client: WeChatClient
) -> None:
    with pytest.raises(WeChatQuotaError) as closed:
        client.send_custom_text(USER, "hi")
    assert closed.value.errcode == 45015
    sim.state.record_interaction(USER, "click")
    for _ in range(3):
        client.send_custom_text(USER, "hi")
    with pytest.raises(WeChatQuotaError) as used_up:
        client.send_custom_text(USER, "hi")
    assert used_up.value.errcode == 45047


@pytest.mark.parametrize(
    ("mode", "delay_s"), [("system_busy", 0.0), ("http_500", 0.0), ("delay", 1.0)]
)
def test_wechat_trouble_raises_unavailable(
    sim: RunningSimulator, factory: sessionmaker[Session], mode: str, delay_s: float
) -> None:
    sim.state.record_interaction(USER, "message")
    with WeChatClient(sim.wechat_settings(api_timeout_s=0.3), factory) as wechat:
        wechat.access_token()
        sim.state.add_fault("custom_send", mode, delay_s=delay_s)
        with pytest.raises(WeChatUnavailableError) as raised:
            wechat.send_custom_text(USER, "hi")
        assert raised.value.errcode == -1
        wechat.send_custom_text(USER, "hi")  # one fault, then WeChat is back


# -- template messages ---------------------------------------------------------------------------


def send_notice(
    client: WeChatClient, session: Session, client_msg_id: str, template_id: str = "tpl-1"
) -> TemplateSend:
    return client.send_template(
        session,
        openid=USER,
        template_id=template_id,
        data=NOTICE,
        url="https://t.example/orders/1",
        client_msg_id=client_msg_id,
    )


def test_a_template_send_is_idempotent_on_client_msg_id(
    sim: RunningSimulator, factory: sessionmaker[Session], client: WeChatClient
) -> None:
    client_msg_id = f"pay-{secrets.token_hex(6)}"
    with session_scope(factory) as session:
        first = send_notice(client, session, client_msg_id)
        assert (first.status, first.error) == ("sent", None)
        assert first.wechat_msgid is not None
        # Cut to 20 characters before sending (spec §8), so the row shows what the user saw.
        assert first.payload["data"]["Left"] == {"value": NOTICE["Left"][:20]}
    with session_scope(factory) as session:
        again = send_notice(client, session, client_msg_id)
        assert (again.id, again.wechat_msgid) == (first.id, first.wechat_msgid)
    assert sim.state.template_sends == 1
    assert [m["msgid"] for m in sim.state.inbox(USER)] == [first.wechat_msgid]


def test_a_refused_template_send_is_stored_as_failed(
    factory: sessionmaker[Session], client: WeChatClient
) -> None:
    with factory() as session:
        row = send_notice(client, session, f"pay-{secrets.token_hex(6)}", template_id="")
        assert (row.status, row.error, row.wechat_msgid) == (
            "failed",
            "40037: invalid template_id",
            None,
        )
        session.rollback()


def test_a_template_send_during_an_outage_stores_nothing_and_can_be_retried(
    sim: RunningSimulator, factory: sessionmaker[Session], client: WeChatClient
) -> None:
    client_msg_id = f"pay-{secrets.token_hex(6)}"
    client.access_token()
    sim.state.add_fault("template_send", "system_busy")
    with factory() as session:
        with pytest.raises(WeChatUnavailableError):
            send_notice(client, session, client_msg_id)
        assert (
            session.scalars(select(TemplateSend.id).filter_by(client_msg_id=client_msg_id)).all()
            == []
        )
        assert send_notice(client, session, client_msg_id).status == "sent"
        session.rollback()


def test_the_template_finish_callback_updates_the_row(factory: sessionmaker[Session]) -> None:
    config = sim_config(token=TOKEN, encoding_aes_key=AES_KEY, template_finish_delay_s=0.3)
    crypt = WXBizMsgCrypt(token=TOKEN, aes_key=decode_encoding_aes_key(AES_KEY), appid=config.appid)
    recorded: list[bool] = []

    def on_message(fields: dict[str, str]) -> None:
        assert fields["Event"] == "TEMPLATESENDJOBFINISH"
        with session_scope(factory) as session:
            msgid = int(fields["MsgID"])
            recorded.append(
                record_template_result(session, wechat_msgid=msgid, status=fields["Status"])
            )

    receiver = PushReceiver(token=TOKEN, crypt=crypt, on_message=on_message)
    with serving(receiver.app) as receiver_url:
        config.callback_url = f"{receiver_url}/wechat"
        with (
            running_simulator(config) as sim,
            WeChatClient(sim.wechat_settings(), factory) as wechat,
        ):
            with session_scope(factory) as session:
                row_id = send_notice(wechat, session, f"pay-{secrets.token_hex(6)}").id
            receiver.wait_for(1)
    assert recorded == [True]
    assert receiver.encrypted == [True]
    with factory() as session:
        row = session.get(TemplateSend, row_id)
        assert row is not None
        assert row.status == "success"
        assert row.finished_at is not None


def test_record_template_result_is_idempotent_and_ignores_unknown_msgids(
    factory: sessionmaker[Session],
) -> None:
    msgid = secrets.randbelow(2**40)
    with factory() as session:
        session.add(
            TemplateSend(
                openid=USER,
                template_id="tpl-1",
                client_msg_id=f"pay-{secrets.token_hex(6)}",
                payload={},
                wechat_msgid=msgid,
                status="sent",
            )
        )
        session.flush()
        assert record_template_result(session, wechat_msgid=msgid, status="failed:user block")
        row = session.scalars(select(TemplateSend).filter_by(wechat_msgid=msgid)).one()
        finished_at = row.finished_at
        assert finished_at is not None
        assert record_template_result(session, wechat_msgid=msgid, status="failed:user block")
        assert (row.status, row.finished_at) == ("failed:user block", finished_at)
        assert not record_template_result(session, wechat_msgid=msgid + 1, status="success")
        session.rollback()


# -- OAuth2 --------------------------------------------------------------------------------------


def test_the_authorize_url_has_wechats_shape(client: WeChatClient, sim: RunningSimulator) -> None:
    url = client.oauth_authorize_url(redirect_uri="https://t.example/h5?a=1&b=2", state="s1")
    assert url == (
        f"{sim.base_url}/connect/oauth2/authorize?appid={sim.config.appid}"
        "&redirect_uri=https%3A%2F%2Ft.example%2Fh5%3Fa%3D1%26b%3D2"
        "&response_type=code&scope=snsapi_base&state=s1#wechat_redirect"
    )
    with pytest.raises(ValueError, match="state"):
        client.oauth_authorize_url(redirect_uri="https://t.example/", state="not/allowed")
    with pytest.raises(ValueError, match="scope"):
        client.oauth_authorize_url(redirect_uri="https://t.example/", state="s", scope="all")


def test_an_oauth_code_gives_the_openid_once(client: WeChatClient) -> None:
    url = client.oauth_authorize_url(redirect_uri="https://t.example/h5/coupons", state="s1")
    # The simulator's own parameter picks the user; the fragment never leaves the browser.
    with httpx.Client() as browser:
        response = browser.get(url.replace("#", f"&sim_openid={USER}#"))
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["state"] == ["s1"]
    code = query["code"][0]
    assert client.oauth_openid(code) == USER
    with pytest.raises(WeChatOAuthError) as reused:
        client.oauth_openid(code)
    assert reused.value.errcode == 40163
    with pytest.raises(WeChatOAuthError) as unknown:
        client.oauth_openid("not-a-code")
    assert unknown.value.errcode == 40029


# -- secrets -------------------------------------------------------------------------------------


def test_no_secret_reaches_the_logs_or_the_errors(
    sim: RunningSimulator,
    factory: sessionmaker[Session],
    client: WeChatClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = sim.wechat_settings(appsecret="ffffffffffffffffffffffffffffffff")
    with WeChatClient(wrong, factory) as wechat, pytest.raises(WeChatApiError) as refused:
        wechat.access_token()
    assert refused.value.errcode == 40125
    token = client.access_token()
    sim.state.record_interaction(USER, "message")
    client.send_custom_text(USER, "hi")
    assert "secret=***" in caplog.text  # httpx logged the requests, redacted
    assert "access_token=***" in caplog.text
    for secret in (APPSECRET, "ffffffffffffffffffffffffffffffff", token):
        assert secret not in caplog.text
        assert secret not in str(refused.value)
        assert secret not in repr(client)
