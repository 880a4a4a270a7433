"""Two worker processes behind one PostgreSQL: the same push delivered to both, at the same
moment, as WeChat's retries can be, produces one stored push and identical replies."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from lbs.models import InboundPush
from lbs.wechat_push import EncryptMode, build_push, read_reply
from tests.conftest import PostgresDatabases
from tests.lbs.wechat_support import (
    ACCOUNT_ID,
    APPID,
    APPSECRET,
    ENCODING_AES_KEY,
    SECRET_KEY,
    TOKEN,
    account_crypt,
    build_town,
    square_location,
)
from tests.workers import serve_workers
from tianfu.db import create_db_engine

pytestmark = pytest.mark.postgres_only

ROUNDS = 5


@pytest.fixture
def database_url(postgres_databases: PostgresDatabases) -> str:
    return build_town(postgres_databases.create()).url


@pytest.fixture
def workers(database_url: str, tmp_path: Path) -> Iterator[list[str]]:
    env = {
        "TIANFU_SECRET_KEY": SECRET_KEY,
        "TIANFU_WECHAT_TOKEN": TOKEN,
        "TIANFU_WECHAT_APPID": APPID,
        "TIANFU_WECHAT_APPSECRET": APPSECRET,
        "TIANFU_WECHAT_ENCODING_AES_KEY": ENCODING_AES_KEY,
        "TIANFU_WECHAT_ACCOUNT_ID": ACCOUNT_ID,
    }
    with serve_workers(database_url, tmp_path, env=env) as bases:
        yield bases


def _deliver_to_all_at_once(bases: list[str], params: dict[str, str], body: bytes) -> list[str]:
    barrier = threading.Barrier(len(bases))
    replies: dict[str, str] = {}

    def deliver(base: str) -> None:
        with httpx.Client(timeout=5) as http:
            barrier.wait()
            response = http.post(f"{base}/wechat", params=params, content=body)
            assert response.status_code == 200, response.text
            replies[base] = read_reply(response.content, token=TOKEN, crypt=account_crypt())

    threads = [threading.Thread(target=deliver, args=(base,)) for base in bases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [replies[base] for base in bases]


def test_one_push_to_two_workers_is_stored_once_with_identical_replies(
    database_url: str, workers: list[str]
) -> None:
    crypt = account_crypt()
    user = f"oTwoWorkers{int(time.time() * 1000)}"
    for _ in range(ROUNDS):
        message = square_location(user)
        push = build_push(
            message,
            token=TOKEN,
            mode=EncryptMode.safe,
            crypt=crypt,
            to_user=ACCOUNT_ID,
            timestamp=int(time.time()),
            nonce="20261128",
        )
        first, second = _deliver_to_all_at_once(workers, push.params, push.body)
        assert first.startswith("<xml>")
        assert "<MsgType><![CDATA[news]]></MsgType>" in first
        assert second == first
        # and a later retry to either worker still gets the same answer
        with httpx.Client(timeout=5) as http:
            late = http.post(f"{workers[1]}/wechat", params=push.params, content=push.body)
        assert read_reply(late.content, token=TOKEN, crypt=crypt) == first

    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            stored = connection.scalar(
                select(func.count()).select_from(InboundPush).where(InboundPush.openid == user)
            )
    finally:
        engine.dispose()
    assert stored == ROUNDS
