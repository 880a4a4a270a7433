"""The counter through the real app on each backend: the confirm page (offer, terms, coupon
state, masked user), a redemption that a double submit makes once, undo on the day and not
after, staff kept to their stores, another merchant's code "not found" like one that does not
exist, and a coupon used by an order that only its refund can give back."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from coupons import claims
from coupons.codes import format_code, new_code
from coupons.models import Claim, ClaimStatus
from merchants.models import AuditEntry
from tests.merchants.commerce_support import (
    Shop,
    browser,
    build_shop,
    claimed_coupon,
    portal_offer,
)
from tests.merchants.conftest import Clients, Committed
from tianfu.orm import utcnow

pytestmark = pytest.mark.anyio
_ATTEMPT = re.compile(r'name="attempt" value="([^"]+)"')


def coupon_at(committed: Committed, shop: Shop, **terms: Any) -> tuple[Shop, str, str]:
    """A coupon of an active offer of the shop: (shop, its code, its holder's openid)."""
    with committed() as session:
        offer = portal_offer(session, shop.merchant, created_by=shop.maker("owner"), **terms)
        coupon = claimed_coupon(session, offer.id, holder="oAbcDEF0123456789xyz9")
        return shop, coupon.code, offer.title_zh


def new_shop(committed: Committed) -> Shop:
    with committed() as session:
        return build_shop(session)


def claim_of(committed: Committed, code: str) -> Claim:
    with committed() as session:
        claim = session.scalars(select(Claim).where(Claim.code == code)).one()
        session.expunge(claim)
        return claim


def audited(committed: Committed, action: str, claim_id: int) -> int:
    with committed() as session:
        return (
            session.scalar(
                select(func.count()).where(
                    AuditEntry.action == action, AuditEntry.target_id == str(claim_id)
                )
            )
            or 0
        )


async def confirm_form(
    client: httpx.AsyncClient, csrf: str, store_id: int, code: str
) -> dict[str, str]:
    """The redeem form of the confirm page, as the browser would send it."""
    page = await client.get("/portal/counter/check", params={"store_id": store_id, "code": code})
    assert page.status_code == 200, page.text
    found = _ATTEMPT.search(page.text)
    assert found, "no redeem button"
    return {"csrf_token": csrf, "store_id": str(store_id), "code": code, "attempt": found.group(1)}


async def test_the_confirm_page_shows_the_offer_its_terms_and_a_masked_user(
    clients: Clients, committed: Committed
) -> None:
    shop, code, title = coupon_at(committed, new_shop(committed), min_spend_fen=5000)
    owner, _ = browser(clients, shop, "owner")
    spaced = f" {format_code(code)} "  # as read aloud and typed, with spaces
    page = await owner.get(
        "/portal/counter/check", params={"store_id": shop.store1, "code": spaced}
    )
    assert page.status_code == 200
    assert f'data-testid="offer-title">{title}<' in page.text
    assert 'data-testid="coupon-status">未使用<' in page.text
    assert 'data-testid="masked-user">oAbc…xyz9<' in page.text
    assert "oAbcDEF0123456789xyz9" not in page.text
    assert "满50元可用" in page.text
    assert 'data-testid="redeem"' in page.text


async def test_a_double_submit_redeems_once_and_both_answers_say_redeemed(
    clients: Clients, committed: Committed
) -> None:
    shop, code, title = coupon_at(committed, new_shop(committed))
    staff, csrf = browser(clients, shop, "staff")
    form = await confirm_form(staff, csrf, shop.store1, code)
    first = await staff.post("/portal/counter/redeem", data=form)
    second = await staff.post("/portal/counter/redeem", data=form)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    claim = claim_of(committed, code)
    assert (claim.status, claim.redeemed_store_id) == (ClaimStatus.redeemed, shop.store1)
    assert audited(committed, "coupon.redeemed", claim.id) == 1
    done = await staff.get(second.headers["location"])
    assert 'data-testid="done">已核销' in done.text
    assert title in done.text
    assert done.text.count('data-testid="redemption-row"') == 1


async def test_two_submits_at_once_redeem_once(
    clients: Clients, committed: Committed, backend: str
) -> None:
    shop, code, _ = coupon_at(committed, new_shop(committed))
    owner, csrf = browser(clients, shop, "owner")
    form = await confirm_form(owner, csrf, shop.store1, code)
    answers = await asyncio.gather(
        *(owner.post("/portal/counter/redeem", data=form) for _ in range(2))
    )
    codes = sorted(a.status_code for a in answers)
    # SQLite refuses the write of a transaction that read before another one wrote: the
    # loser is told to submit again, which is safe.
    assert codes == [303, 303] or (backend == "sqlite" and codes == [303, 503]), codes
    done = {a.headers["location"] for a in answers if a.status_code == 303}
    again = await owner.post("/portal/counter/redeem", data=form)
    assert {again.headers["location"]} == done
    claim = claim_of(committed, code)
    assert claim.status is ClaimStatus.redeemed
    assert audited(committed, "coupon.redeemed", claim.id) == 1


async def test_a_coupon_used_before_is_refused_as_used(
    clients: Clients, committed: Committed
) -> None:
    shop, code, _ = coupon_at(committed, new_shop(committed))
    owner, csrf = browser(clients, shop, "owner")
    used = await confirm_form(owner, csrf, shop.store1, code)
    await owner.post("/portal/counter/redeem", data=used)
    again = await owner.get("/portal/counter/check", params={"store_id": shop.store1, "code": code})
    assert 'data-testid="coupon-status">已核销<' in again.text
    assert 'data-testid="redeem"' not in again.text
    # Presented again later: a new confirmation, which is not the one that redeemed it.
    refused = await owner.post("/portal/counter/redeem", data=used | {"attempt": "x" * 22})
    assert refused.status_code == 409
    assert "该券已使用" in refused.text


async def test_an_undo_on_the_same_day_gives_the_coupon_back(
    clients: Clients, committed: Committed
) -> None:
    shop, code, _ = coupon_at(committed, new_shop(committed))
    staff, csrf = browser(clients, shop, "staff")
    await staff.post(
        "/portal/counter/redeem", data=await confirm_form(staff, csrf, shop.store1, code)
    )
    claim_id = claim_of(committed, code).id
    page = await staff.get(f"/portal/counter?store_id={shop.store1}")
    assert f'action="/portal/counter/redemptions/{claim_id}/undo"' in page.text
    form = {"csrf_token": csrf, "store_id": str(shop.store1)}
    undone = await staff.post(f"/portal/counter/redemptions/{claim_id}/undo", data=form)
    assert undone.headers["location"] == f"/portal/counter?store_id={shop.store1}&done=undone"
    claim = claim_of(committed, code)
    assert (claim.status, claim.restore_count, claim.redeemed_store_id) == (
        ClaimStatus.claimed,
        1,
        None,
    )
    repeated = await staff.post(f"/portal/counter/redemptions/{claim_id}/undo", data=form)
    assert repeated.status_code == 303  # a double submit of the undo changes nothing more
    assert audited(committed, "coupon.redemption_undone", claim_id) == 1
    # The coupon is usable again.
    await staff.post(
        "/portal/counter/redeem", data=await confirm_form(staff, csrf, shop.store1, code)
    )
    assert claim_of(committed, code).status is ClaimStatus.redeemed


async def test_an_undo_after_the_day_is_refused(clients: Clients, committed: Committed) -> None:
    shop = new_shop(committed)
    with committed() as session:
        offer = portal_offer(session, shop.merchant, created_by=shop.maker("owner"))
        yesterday = utcnow() - timedelta(days=1)
        coupon = claimed_coupon(session, offer.id, now=yesterday)
        claims.redeem(
            session,
            code=coupon.code,
            store_id=shop.store1,
            now=yesterday,
            order_ref="counter:yesterday-at-the-counter",
        )
        claim_id = coupon.id
    owner, csrf = browser(clients, shop, "owner")
    refused = await owner.post(
        f"/portal/counter/redemptions/{claim_id}/undo",
        data={"csrf_token": csrf, "store_id": str(shop.store1)},
    )
    assert refused.status_code == 409
    assert "已过当日结算" in refused.text
    assert claim_of(committed, coupon.code).status is ClaimStatus.redeemed


async def test_only_the_redeeming_store_undoes(clients: Clients, committed: Committed) -> None:
    shop, code, _ = coupon_at(committed, new_shop(committed))
    owner, csrf = browser(clients, shop, "owner")
    await owner.post(
        "/portal/counter/redeem", data=await confirm_form(owner, csrf, shop.store1, code)
    )
    claim_id = claim_of(committed, code).id
    refused = await owner.post(
        f"/portal/counter/redemptions/{claim_id}/undo",
        data={"csrf_token": csrf, "store_id": str(shop.store2)},
    )
    assert refused.status_code == 409
    assert "只能由核销门店撤销" in refused.text
    assert claim_of(committed, code).status is ClaimStatus.redeemed


async def test_staff_work_at_their_own_stores_only(clients: Clients, committed: Committed) -> None:
    shop, code, _ = coupon_at(committed, new_shop(committed))
    staff, csrf = browser(clients, shop, "staff")
    page = await staff.get("/portal/counter")
    assert f'data-testid="counter-store">{shop.store1_name}<' in page.text
    assert shop.store2_name not in page.text
    assert (await staff.get(f"/portal/counter?store_id={shop.store2}")).status_code == 404
    check = await staff.get("/portal/counter/check", params={"store_id": shop.store2, "code": code})
    assert check.status_code == 404
    refused = await staff.post(
        "/portal/counter/redeem",
        data={"csrf_token": csrf, "store_id": str(shop.store2), "code": code},
    )
    assert refused.status_code == 404
    assert shop.store2_name not in refused.text
    assert claim_of(committed, code).status is ClaimStatus.claimed
    # A redemption at store 2 is not theirs to undo either.
    owner, owner_csrf = browser(clients, shop, "owner")
    await owner.post(
        "/portal/counter/redeem", data=await confirm_form(owner, owner_csrf, shop.store2, code)
    )
    claim_id = claim_of(committed, code).id
    hidden = await staff.post(
        f"/portal/counter/redemptions/{claim_id}/undo",
        data={"csrf_token": csrf, "store_id": str(shop.store1)},
    )
    assert hidden.status_code == 404
    assert claim_of(committed, code).status is ClaimStatus.redeemed


async def test_another_merchants_code_is_not_found_like_a_code_never_issued(
    clients: Clients, committed: Committed
) -> None:
    shop, code, title = coupon_at(committed, new_shop(committed))
    other, csrf = browser(clients, shop, "other_owner")
    never_issued = new_code()
    pages = [
        await other.get(
            "/portal/counter/check", params={"store_id": shop.other_store, "code": candidate}
        )
        for candidate in (code, never_issued)
    ]
    for page in pages:
        assert page.status_code == 404
        assert 'data-testid="code-error">券码不存在<' in page.text
        assert title not in page.text
    refused = await other.post(
        "/portal/counter/redeem",
        data={"csrf_token": csrf, "store_id": str(shop.other_store), "code": code},
    )
    assert refused.status_code == 404
    assert "券码不存在" in refused.text
    assert claim_of(committed, code).status is ClaimStatus.claimed


async def test_a_mistyped_code_is_refused_before_any_lookup(
    clients: Clients, committed: Committed
) -> None:
    shop, code, _ = coupon_at(committed, new_shop(committed))
    owner, _ = browser(clients, shop, "owner")
    swapped = code[1] + code[0] + code[2:] if code[0] != code[1] else code[:-1] + "x"
    page = await owner.get(
        "/portal/counter/check", params={"store_id": shop.store1, "code": swapped}
    )
    assert page.status_code == 422
    assert "券码有误" in page.text
    long = await owner.get(
        "/portal/counter/check", params={"store_id": shop.store1, "code": "1" * 5000}
    )
    assert long.status_code == 422


async def test_a_coupon_for_other_stores_is_shown_as_not_usable_here(
    clients: Clients, committed: Committed
) -> None:
    shop = new_shop(committed)
    shop, code, _ = coupon_at(committed, shop, store_ids=[shop.store1])
    owner, csrf = browser(clients, shop, "owner")
    page = await owner.get("/portal/counter/check", params={"store_id": shop.store2, "code": code})
    assert 'data-testid="not-usable">该券暂不可用：不适用于本店<' in page.text
    assert 'data-testid="redeem"' not in page.text
    refused = await owner.post(
        "/portal/counter/redeem",
        data={"csrf_token": csrf, "store_id": str(shop.store2), "code": code},
    )
    assert refused.status_code == 409
    assert claim_of(committed, code).status is ClaimStatus.claimed


async def test_a_coupon_used_by_an_order_is_given_back_by_its_refund_only(
    clients: Clients, committed: Committed
) -> None:
    shop, code, _ = coupon_at(committed, new_shop(committed))
    with committed() as session:
        claims.redeem(
            session, code=code, store_id=shop.store1, now=utcnow(), order_ref="TF0123456789abcdef01"
        )
    owner, csrf = browser(clients, shop, "owner")
    page = await owner.get(f"/portal/counter?store_id={shop.store1}")
    assert "随订单使用" in page.text
    claim_id = claim_of(committed, code).id
    refused = await owner.post(
        f"/portal/counter/redemptions/{claim_id}/undo",
        data={"csrf_token": csrf, "store_id": str(shop.store1)},
    )
    assert refused.status_code == 409
    assert "请通过订单退款退回" in refused.text
    assert claim_of(committed, code).status is ClaimStatus.redeemed


async def test_a_redeem_without_the_csrf_token_redeems_nothing(
    clients: Clients, committed: Committed
) -> None:
    shop, code, _ = coupon_at(committed, new_shop(committed))
    owner, csrf = browser(clients, shop, "owner")
    form = await confirm_form(owner, csrf, shop.store1, code)
    del form["csrf_token"]
    refused = await owner.post("/portal/counter/redeem", data=form)
    assert refused.status_code == 403
    assert claim_of(committed, code).status is ClaimStatus.claimed
