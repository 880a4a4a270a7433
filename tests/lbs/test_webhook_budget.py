"""The 5-second window: a reply not ready within the budget is answered with "success" at once
and delivered afterwards as a customer-service message, through the WeChat simulator."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

import lbs.nearby
from lbs.models import InboundPush, ReplyDelivery
from lbs.simulator import SimulatorConfig
from tests.http import asgi_client
from tests.lbs.sim_helpers import RunningSimulator, running_simulator
from tests.lbs.wechat_support import (
    ACCOUNT_ID,
    APPID,
    APPSECRET,
    ENCODING_AES_KEY,
    HOSTILE_NAME,
    TOKEN,
    Pusher,
    Town,
    square_location,
    wechat_settings,
)
from tianfu.app import create_app
from tianfu.db import create_db_engine, make_session_factory

pytestmark = pytest.mark.anyio

BUDGET_S = 0.3
SLOWNESS_S = 1.0


@pytest.fixture
def simulator() -> Iterator[RunningSimulator]:
    config = SimulatorConfig(
        appid=APPID,
        appsecret=APPSECRET,
        token=TOKEN,
        encoding_aes_key=ENCODING_AES_KEY,
        account_id=ACCOUNT_ID,
    )
    with running_simulator(config) as running:
        yield running


@pytest.fixture
def slow_nearby(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the nearby lookup overrun the budget, as a database under a load spike would."""
    original: Callable[..., Any] = lbs.nearby.find_neighbours

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(SLOWNESS_S)
        return original(*args, **kwargs)

    monkeypatch.setattr("lbs.dispatch.find_neighbours", slow)


@pytest.fixture
async def app(town: Town, simulator: RunningSimulator) -> AsyncIterator[FastAPI]:
    app = create_app(
        wechat_settings(
            town.url,
            api_base_url=simulator.base_url,
            open_base_url=simulator.base_url,
            reply_budget_s=BUDGET_S,
        )
    )
    app.state.store_index.build()
    yield app
    app.state.push_executor.shutdown(wait=True)
    app.state.wechat_client.close()


def _record_interaction(simulator: RunningSimulator, openid: str) -> None:
    with httpx.Client() as http:
        http.post(
            f"{simulator.base_url}/sim/interactions", json={"openid": openid, "kind": "message"}
        )


def _inbox(simulator: RunningSimulator, openid: str, *, wait_s: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + wait_s
    while True:
        messages = httpx.get(f"{simulator.base_url}/sim/inbox", params={"openid": openid}).json()
        if messages["messages"] or time.monotonic() > deadline:
            return list(messages["messages"])
        time.sleep(0.05)


def _delivery(town: Town, openid: str) -> ReplyDelivery:
    engine = create_db_engine(town.url)
    try:
        with make_session_factory(engine)() as session:
            return session.scalars(
                select(InboundPush.delivery).where(InboundPush.openid == openid)
            ).one()
    finally:
        engine.dispose()


async def test_a_late_reply_goes_out_as_a_customer_service_message(
    app: FastAPI, simulator: RunningSimulator, town: Town, slow_nearby: None
) -> None:
    user = f"oBudgetUser{time.time_ns()}"
    # The user's message opens the customer-service window (spec §8).
    _record_interaction(simulator, user)
    message = square_location(user)
    async for client in asgi_client(app):
        pusher = Pusher(client)
        started = time.monotonic()
        assert await pusher.reply(message) == "success"
        assert time.monotonic() - started < SLOWNESS_S  # answered at the budget, not after
        [sent] = _inbox(simulator, user, wait_s=10)
        assert sent["msgtype"] == "news"
        [article] = sent["news"]["articles"]
        assert HOSTILE_NAME in article["title"]
        assert "/h5/nearby?t=" in article["url"]
        assert _delivery(town, user) is ReplyDelivery.customer_service
        # WeChat's retry of the same push: already answered, so nothing more is said
        assert await pusher.reply(message) == "success"
        app.state.push_executor.shutdown(wait=True)  # before the app's engine is disposed
    assert len(_inbox(simulator, user, wait_s=0)) == 1


async def test_a_late_reply_outside_the_service_window_is_dropped_quietly(
    app: FastAPI, simulator: RunningSimulator, town: Town, slow_nearby: None
) -> None:
    user = f"oBudgetSilent{time.time_ns()}"  # no interaction recorded: WeChat answers 45015
    message = square_location(user)
    async for client in asgi_client(app):
        assert await Pusher(client).reply(message) == "success"
        app.state.push_executor.shutdown(wait=True)  # the late attempt has finished
    assert _inbox(simulator, user, wait_s=0) == []
    assert _delivery(town, user) is ReplyDelivery.customer_service


async def test_a_reply_within_the_budget_is_passive(
    app: FastAPI, simulator: RunningSimulator, town: Town
) -> None:
    user = f"oBudgetFast{time.time_ns()}"
    message = square_location(user)
    async for client in asgi_client(app):
        reply = await Pusher(client).reply(message)
    assert "<MsgType><![CDATA[news]]></MsgType>" in reply
    assert _delivery(town, user) is ReplyDelivery.passive
