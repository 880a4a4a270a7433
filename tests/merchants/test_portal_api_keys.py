"""The owner's API keys page through the real app on each backend: a key is shown once and
stored as the SHA-256 of its secret, it opens the REST API at once, a revoked one is refused at
once, a read key cannot write, another merchant's keys are neither shown nor revocable."""

from __future__ import annotations

import hashlib
import json
import re

import httpx
import pytest
from sqlalchemy import select

from merchants import api_keys
from merchants.models import ApiKeyAccess, AuditEntry, MerchantApiKey, PortalAccount
from tests.builders import make_merchant, make_store
from tests.merchants.conftest import Clients, Committed
from tests.merchants.portal_support import approved_application, log_in, make_owner, unique
from tianfu.orm import utcnow

pytestmark = pytest.mark.anyio

_ISSUED = re.compile(r'data-testid="issued-key">(tfk_[0-9a-f]{8}_[A-Za-z0-9_-]{43})<')


def make_shop(committed: Committed) -> tuple[str, int, str]:
    """(owner's username, merchant id, a store's name) of a new approved merchant."""
    with committed() as session:
        merchant = make_merchant(session, name=unique("甲商户"))
        approved_application(session, merchant)
        store = make_store(session, merchant=merchant, name=unique("甲一店"))
        return make_owner(session, merchant).username, merchant.id, store.name


async def create_key(
    browser: httpx.AsyncClient, csrf: str, *, access: str = "write", name: str = "收银系统"
) -> str:
    page = await browser.post(
        "/portal/api-keys", data={"csrf_token": csrf, "name": name, "access": access}
    )
    assert page.status_code == 200, page.text
    found = _ISSUED.search(page.text)
    assert found, page.text
    return found.group(1)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_a_key_is_shown_once_stored_hashed_and_opens_the_api(
    clients: Clients, committed: Committed
) -> None:
    owner, merchant_id, store_name = make_shop(committed)
    browser = clients()
    csrf = await log_in(browser, owner)
    key = await create_key(browser, csrf)
    prefix, secret = key[:12], key[13:]

    with committed() as session:
        row = session.scalars(select(MerchantApiKey).where(MerchantApiKey.prefix == prefix)).one()
        entry = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "api_key.created")
            .order_by(AuditEntry.id.desc())
            .limit(1)
        ).one()
    assert (row.merchant_id, row.access, row.name) == (merchant_id, ApiKeyAccess.write, "收银系统")
    assert row.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    assert entry.detail == {"prefix": prefix, "name": "收银系统", "access": "write"}
    assert secret not in json.dumps(entry.detail)

    later = await browser.get("/portal/api-keys")
    assert secret not in later.text  # once only
    assert f'data-testid="key-prefix">{prefix}<' in later.text
    assert "从未使用" in later.text

    api = clients()  # no cookies: the key alone
    stores = await api.get("/api/v1/merchant/stores", headers=bearer(key))
    assert stores.status_code == 200
    assert [store["name"] for store in stores.json()] == [store_name]
    assert (
        await api.get("/api/v1/merchant/stores", headers={"Authorization": f"bearer {key}"})
    ).status_code == 200
    assert "从未使用" not in (await browser.get("/portal/api-keys")).text


async def test_a_revoked_key_is_refused_at_once(clients: Clients, committed: Committed) -> None:
    owner, _merchant_id, _store = make_shop(committed)
    browser = clients()
    csrf = await log_in(browser, owner)
    key = await create_key(browser, csrf)
    api = clients()
    assert (await api.get("/api/v1/merchant/offers", headers=bearer(key))).status_code == 200
    with committed() as session:
        key_id = session.scalars(
            select(MerchantApiKey.id).where(MerchantApiKey.prefix == key[:12])
        ).one()
    revoked = await browser.post(f"/portal/api-keys/{key_id}/revoke", data={"csrf_token": csrf})
    assert revoked.headers["location"] == "/portal/api-keys?done=revoked"
    refused = await api.get("/api/v1/merchant/offers", headers=bearer(key))
    assert refused.status_code == 401
    assert refused.json() == {"error": "api_key_invalid", "detail": "API 密钥无效或已吊销"}
    again = await browser.post(f"/portal/api-keys/{key_id}/revoke", data={"csrf_token": csrf})
    assert again.status_code == 409
    page = await browser.get("/portal/api-keys")
    assert "已吊销" in page.text
    assert 'data-testid="revoke"' not in page.text


async def test_a_read_key_cannot_write(clients: Clients, committed: Committed) -> None:
    owner, _merchant_id, _store = make_shop(committed)
    browser = clients()
    key = await create_key(browser, await log_in(browser, owner), access="read")
    api = clients()
    assert (await api.get("/api/v1/merchant/stores", headers=bearer(key))).status_code == 200
    refused = await api.post("/api/v1/merchant/offers", headers=bearer(key), json={})
    assert refused.status_code == 403
    assert refused.json()["error"] == "api_key_read_only"


async def test_another_merchants_keys_are_neither_shown_nor_revocable(
    clients: Clients, committed: Committed
) -> None:
    owner_a, _a, _store = make_shop(committed)
    owner_b, _b, _store_b = make_shop(committed)
    browser_a = clients()
    key = await create_key(browser_a, await log_in(browser_a, owner_a))
    with committed() as session:
        key_id = session.scalars(
            select(MerchantApiKey.id).where(MerchantApiKey.prefix == key[:12])
        ).one()
    browser_b = clients()
    csrf_b = await log_in(browser_b, owner_b)
    assert key[:12] not in (await browser_b.get("/portal/api-keys")).text
    hidden = await browser_b.post(f"/portal/api-keys/{key_id}/revoke", data={"csrf_token": csrf_b})
    assert hidden.status_code == 404
    assert (await clients().get("/api/v1/merchant/stores", headers=bearer(key))).status_code == 200


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"name": "", "access": "write"}, "name", "请填写密钥名称"),
        ({"name": "名" * 61, "access": "write"}, "name", "密钥名称不能超过60个字符"),
        ({"name": "收银\x07", "access": "write"}, "name", "不能包含控制字符"),
        ({"name": "收银", "access": "admin"}, "access", "请选择权限"),
    ],
)
async def test_a_bad_key_form_is_refused_and_creates_nothing(
    clients: Clients, committed: Committed, form: dict[str, str], field: str, message: str
) -> None:
    owner, merchant_id, _store = make_shop(committed)
    browser = clients()
    csrf = await log_in(browser, owner)
    refused = await browser.post("/portal/api-keys", data=form | {"csrf_token": csrf})
    assert refused.status_code == 422
    assert f'data-testid="error-{field}">' in refused.text
    assert message in refused.text
    with committed() as session:
        assert api_keys.list_keys(session, merchant_id) == []


async def test_at_most_twenty_keys_are_active(clients: Clients, committed: Committed) -> None:
    owner, merchant_id, _store = make_shop(committed)
    with committed() as session:
        owner_id = session.scalars(
            select(PortalAccount.id).where(PortalAccount.username == owner)
        ).one()
        for _ in range(api_keys.MAX_ACTIVE_KEYS):
            api_keys.issue_key(
                session,
                merchant_id=merchant_id,
                name="k",
                created_by=owner_id,
                access=ApiKeyAccess.read,
                now=utcnow(),
            )
    browser = clients()
    csrf = await log_in(browser, owner)
    refused = await browser.post(
        "/portal/api-keys", data={"csrf_token": csrf, "name": "再来一个", "access": "read"}
    )
    assert refused.status_code == 409
    assert "有效密钥最多20个" in refused.text


@pytest.mark.parametrize(
    "token",
    [
        "",
        "tfk_",
        "tfk_0000000g_" + "A" * 43,
        "tfk_00000000_" + "A" * 42,
        "tfk_00000000_" + "A" * 99,
    ],
)
def test_malformed_keys_are_not_parsed(token: str) -> None:
    assert api_keys.parse_token(token) is None
