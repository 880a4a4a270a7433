from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coupons import claims, points, service
from coupons.codes import format_code, is_valid_code, new_code
from coupons.errors import (
    ClaimLocationRequiredError,
    ClaimRequestConflictError,
    CouponAlreadyRedeemedError,
    CouponBudgetExhaustedError,
    CouponDailyLimitReachedError,
    CouponExpiredError,
    CouponLimitReachedError,
    CouponNotApplicableError,
    CouponNotFoundError,
    CouponNotRedeemedError,
    CouponOutOfStockError,
    CouponStoreMismatchError,
    CouponUndoTooLateError,
    CouponVoidError,
    InvalidCouponCodeError,
    OfferChangedError,
    OfferNotActiveError,
    OfferNotClaimableError,
    OutsideClaimAreaError,
    PointsInsufficientError,
)
from coupons.models import Claim, ClaimStatus, Offer, OfferStatus, OfferUserCount, PointsKind
from coupons.rules import OfferKind
from coupons.schemas import GeoPointGcj02, TimeWindowIn
from merchants.models import Merchant, Store
from tests.builders import make_merchant, make_offer, make_store

# Tuesday 2026-12-01, 12:00 in Shanghai.
NOW = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
# Chunxi Road, Chengdu (GCJ-02); 0.0045 degrees of latitude is about 500 m.
STORE_LAT, STORE_LNG = 30.6577, 104.0807


def _claim(session: Session, offer: Offer, openid: str = "oUser", **kwargs: Any) -> Claim:
    kwargs.setdefault("client_request_id", f"req-{openid}-{new_code()}")
    kwargs.setdefault("now", NOW)
    return claims.claim(session, offer_id=offer.id, openid=openid, **kwargs)


def _shop(session: Session, **terms: Any) -> tuple[Merchant, Store, Offer]:
    merchant = make_merchant(session)
    store = make_store(session, merchant=merchant, lat=STORE_LAT, lng=STORE_LNG)
    return merchant, store, make_offer(session, merchant=merchant, **terms)


def _user_count(session: Session, offer: Offer, openid: str) -> int:
    counted = session.scalar(
        select(OfferUserCount.claimed).where(
            OfferUserCount.offer_id == offer.id, OfferUserCount.openid == openid
        )
    )
    return counted or 0


# -- claiming ---------------------------------------------------------------------------------


def test_a_claim_issues_a_checkable_code_and_takes_stock_and_budget(db_session: Session) -> None:
    offer = make_offer(db_session, amount_off_fen=1000, valid_until=NOW + timedelta(days=10))
    coupon = _claim(db_session, offer)
    assert coupon.status is ClaimStatus.claimed
    assert is_valid_code(coupon.code)
    assert coupon.reserved_fen == 1000
    assert coupon.expires_at == NOW + timedelta(days=10)
    db_session.refresh(offer)
    assert (offer.claimed_count, offer.claimed_fen) == (1, 1000)


def test_a_coupon_valid_for_days_after_claim_never_outlives_its_offer(db_session: Session) -> None:
    short = make_offer(db_session, valid_days_after_claim=7)
    capped = make_offer(db_session, valid_days_after_claim=7, valid_until=NOW + timedelta(days=3))
    assert _claim(db_session, short).expires_at == NOW + timedelta(days=7)
    assert _claim(db_session, capped).expires_at == NOW + timedelta(days=3)


def test_a_repeated_request_returns_the_same_coupon(db_session: Session) -> None:
    offer = make_offer(db_session, per_user_limit=3)
    first = _claim(db_session, offer, client_request_id="tap-1")
    again = _claim(db_session, offer, client_request_id="tap-1")
    assert again.id == first.id
    db_session.refresh(offer)
    assert offer.claimed_count == 1
    assert _user_count(db_session, offer, "oUser") == 1


def test_a_request_id_reused_for_another_offer_is_refused(db_session: Session) -> None:
    one, two = make_offer(db_session), make_offer(db_session)
    _claim(db_session, one, client_request_id="tap-1")
    with pytest.raises(ClaimRequestConflictError):
        _claim(db_session, two, client_request_id="tap-1")


def test_claims_beyond_the_per_user_limit_are_refused(db_session: Session) -> None:
    offer = make_offer(db_session, per_user_limit=2)
    _claim(db_session, offer)
    _claim(db_session, offer)
    with pytest.raises(CouponLimitReachedError, match="每人限领2张"):
        _claim(db_session, offer)
    _claim(db_session, offer, openid="oOther")
    assert _user_count(db_session, offer, "oUser") == 2


def test_claims_beyond_stock_are_refused(db_session: Session) -> None:
    offer = make_offer(db_session, total_stock=2)
    _claim(db_session, offer, "a")
    _claim(db_session, offer, "b")
    with pytest.raises(CouponOutOfStockError):
        _claim(db_session, offer, "c")
    db_session.refresh(offer)
    assert offer.claimed_count == 2


def test_claims_beyond_budget_are_refused(db_session: Session) -> None:
    offer = make_offer(db_session, amount_off_fen=1000, budget_fen=2500)
    _claim(db_session, offer, "a")
    _claim(db_session, offer, "b")
    with pytest.raises(CouponBudgetExhaustedError):
        _claim(db_session, offer, "c")
    db_session.refresh(offer)
    assert offer.claimed_fen == 2000


def test_the_daily_limit_resets_at_midnight_in_shanghai(db_session: Session) -> None:
    offer = make_offer(db_session, per_day_limit=2)
    late = datetime(2026, 12, 1, 15, 59, tzinfo=UTC)  # 23:59 in Shanghai
    _claim(db_session, offer, "a", now=late)
    _claim(db_session, offer, "b", now=late)
    with pytest.raises(CouponDailyLimitReachedError):
        _claim(db_session, offer, "c", now=late)
    # The refused claim left nothing behind, although its early checks had passed.
    assert _user_count(db_session, offer, "c") == 0
    assert db_session.scalar(select(func.count()).where(Claim.openid == "c")) == 0
    next_day = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)  # 00:00 the next day in Shanghai
    _claim(db_session, offer, "c", now=next_day)
    _claim(db_session, offer, "d", now=next_day)
    with pytest.raises(CouponDailyLimitReachedError):
        _claim(db_session, offer, "e", now=next_day)


@pytest.mark.parametrize("status", [OfferStatus.draft, OfferStatus.paused, OfferStatus.ended])
def test_only_active_offers_can_be_claimed(db_session: Session, status: OfferStatus) -> None:
    offer = make_offer(db_session, status=status)
    with pytest.raises(OfferNotActiveError):
        _claim(db_session, offer)


def test_an_offer_is_claimable_within_its_validity_only(db_session: Session) -> None:
    offer = make_offer(
        db_session, valid_from=NOW + timedelta(hours=1), valid_until=NOW + timedelta(days=1)
    )
    with pytest.raises(OfferNotClaimableError, match="未到使用时间"):
        _claim(db_session, offer)
    with pytest.raises(OfferNotClaimableError, match="已过期"):
        _claim(db_session, offer, now=NOW + timedelta(days=1))
    _claim(db_session, offer, now=NOW + timedelta(hours=1))


def test_weekday_and_time_windows_limit_use_not_claiming(db_session: Session) -> None:
    offer = make_offer(
        db_session, weekdays=[5, 6], time_windows=[TimeWindowIn(start=time(18), end=time(0))]
    )
    _claim(db_session, offer)  # a Tuesday noon


def test_new_customer_offers_refuse_returning_customers(db_session: Session) -> None:
    offer = make_offer(db_session, new_customers_only=True)
    with pytest.raises(OfferNotClaimableError, match="仅限新客"):
        _claim(db_session, offer)
    _claim(db_session, offer, is_new_customer=True)


def test_terms_edited_while_claiming_refuse_the_claim(
    db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    offer = make_offer(db_session)
    real_check = claims._check_geo

    def edit_meanwhile(*args: Any) -> None:
        real_check(*args)
        # Another worker's edit: this session's copy of the offer does not see it.
        db_session.execute(
            update(Offer)
            .where(Offer.id == offer.id)
            .values(terms_version=Offer.terms_version + 1)
            .execution_options(synchronize_session=False)
        )

    monkeypatch.setattr(claims, "_check_geo", edit_meanwhile)
    with pytest.raises(OfferChangedError):
        _claim(db_session, offer)
    assert _user_count(db_session, offer, "oUser") == 0


# -- geo-targeting ----------------------------------------------------------------------------


def test_a_radius_offer_is_claimable_near_one_of_its_stores_only(db_session: Session) -> None:
    _, _, offer = _shop(db_session, claim_radius_m=500)
    _claim(db_session, offer, "near", lat_gcj02=STORE_LAT + 0.0040, lng_gcj02=STORE_LNG)
    with pytest.raises(OutsideClaimAreaError):
        _claim(db_session, offer, "far", lat_gcj02=STORE_LAT + 0.0050, lng_gcj02=STORE_LNG)
    with pytest.raises(ClaimLocationRequiredError):
        _claim(db_session, offer, "unknown")


def test_a_scoped_radius_offer_measures_from_its_own_stores(db_session: Session) -> None:
    merchant = make_merchant(db_session)
    make_store(db_session, merchant=merchant, lat=STORE_LAT, lng=STORE_LNG)
    far_store = make_store(db_session, merchant=merchant, lat=30.70, lng=104.00, name="远店")
    offer = make_offer(db_session, merchant=merchant, claim_radius_m=500, store_ids=[far_store.id])
    with pytest.raises(OutsideClaimAreaError):
        _claim(db_session, offer, lat_gcj02=STORE_LAT, lng_gcj02=STORE_LNG)
    _claim(db_session, offer, lat_gcj02=30.70, lng_gcj02=104.001)


def test_an_area_offer_is_claimable_inside_its_polygon_only(db_session: Session) -> None:
    # A triangle over Chunxi Road; corners as (lat, lng).
    corners = [(30.650, 104.070), (30.650, 104.090), (30.670, 104.080)]
    area = [GeoPointGcj02(lat_gcj02=lat, lng_gcj02=lng) for lat, lng in corners]
    _, _, offer = _shop(db_session, claim_area_gcj02=area)
    _claim(db_session, offer, "inside", lat_gcj02=30.655, lng_gcj02=104.080)
    # Inside the triangle's bounding box but outside the triangle itself.
    with pytest.raises(OutsideClaimAreaError):
        _claim(db_session, offer, "corner", lat_gcj02=30.668, lng_gcj02=104.072)
    # Swapped coordinates (a classic bug) land far outside.
    with pytest.raises(OutsideClaimAreaError):
        _claim(db_session, offer, "swapped", lat_gcj02=30.655, lng_gcj02=104.080 - 73.425)


# -- points exchange --------------------------------------------------------------------------


def test_a_points_exchange_spends_the_points_with_the_claim(db_session: Session) -> None:
    offer = make_offer(db_session, kind=OfferKind.points_exchange, points_cost=300)
    points.earn(db_session, openid="oUser", points=500, source_key="order:1:earn", now=NOW)
    coupon = _claim(db_session, offer)
    assert points.balance(db_session, "oUser") == 200
    entry = points.history(db_session, "oUser")[0]
    assert (entry.kind, entry.delta, entry.source_key) == (
        PointsKind.exchange,
        -300,
        f"claim:{coupon.id}",
    )
    with pytest.raises(PointsInsufficientError, match="还差100积分"):
        _claim(db_session, offer)
    assert points.balance(db_session, "oUser") == 200


def test_an_expired_exchange_is_refused_as_expired_not_for_points(db_session: Session) -> None:
    offer = make_offer(db_session, kind=OfferKind.points_exchange, points_cost=300, valid_until=NOW)
    with pytest.raises(OfferNotClaimableError, match="已过期"):
        _claim(db_session, offer)


# -- redeeming --------------------------------------------------------------------------------


def test_a_coupon_is_redeemed_once(db_session: Session) -> None:
    _, store, offer = _shop(db_session)
    code = _claim(db_session, offer).code
    used = claims.redeem(
        db_session, code=format_code(code), store_id=store.id, now=NOW, order_ref="order-1"
    )
    assert used.status is ClaimStatus.redeemed
    assert (used.redeemed_store_id, used.redeemed_at, used.order_ref) == (store.id, NOW, "order-1")
    with pytest.raises(CouponAlreadyRedeemedError):
        claims.redeem(db_session, code=code, store_id=store.id, now=NOW)


def test_a_mistyped_or_unknown_code_is_refused(db_session: Session) -> None:
    _, store, offer = _shop(db_session)
    code = _claim(db_session, offer).code
    typo = code[:5] + str((int(code[5]) + 1) % 10) + code[6:]
    with pytest.raises(InvalidCouponCodeError):
        claims.redeem(db_session, code=typo, store_id=store.id, now=NOW)
    with pytest.raises(CouponNotFoundError):
        claims.redeem(db_session, code=new_code(), store_id=store.id, now=NOW)


def test_a_coupon_is_refused_outside_its_store_scope_and_hours(db_session: Session) -> None:
    merchant, store, _ = _shop(db_session)
    other = make_store(db_session, merchant=merchant, name="别家分店")
    elsewhere = make_store(db_session)
    scoped = make_offer(db_session, merchant=merchant, store_ids=[store.id])
    weekend = make_offer(db_session, merchant=merchant, weekdays=[5, 6])
    code = _claim(db_session, scoped).code
    for store_id in (other.id, elsewhere.id):
        with pytest.raises(CouponNotApplicableError, match="不适用于本店"):
            claims.redeem(db_session, code=code, store_id=store_id, now=NOW)
    weekend_code = _claim(db_session, weekend).code
    with pytest.raises(CouponNotApplicableError, match="仅限周六、周日使用"):
        claims.redeem(db_session, code=weekend_code, store_id=store.id, now=NOW)
    saturday = NOW + timedelta(days=4)
    assert claims.redeem(db_session, code=weekend_code, store_id=store.id, now=saturday).status


def test_checkout_judges_the_spend_too(db_session: Session) -> None:
    _, store, offer = _shop(
        db_session, kind=OfferKind.threshold_off, amount_off_fen=2000, threshold_fen=10000
    )
    code = _claim(db_session, offer).code
    with pytest.raises(CouponNotApplicableError, match="再消费12元"):
        claims.redeem(db_session, code=code, store_id=store.id, now=NOW, payable_fen=8800)
    claims.redeem(db_session, code=code, store_id=store.id, now=NOW, payable_fen=10000)


def test_an_expired_coupon_is_refused_even_before_the_expiry_job(db_session: Session) -> None:
    _, store, offer = _shop(db_session, valid_days_after_claim=1)
    code = _claim(db_session, offer).code
    with pytest.raises(CouponExpiredError):
        claims.redeem(db_session, code=code, store_id=store.id, now=NOW + timedelta(days=1))
    service.expire_due(db_session, NOW + timedelta(days=1))
    with pytest.raises(CouponExpiredError):
        claims.redeem(db_session, code=code, store_id=store.id, now=NOW + timedelta(days=1))


def test_pausing_an_offer_stops_claims_not_use(db_session: Session) -> None:
    _, store, offer = _shop(db_session)
    code = _claim(db_session, offer).code
    service.pause(db_session, offer.id)
    assert claims.redeem(db_session, code=code, store_id=store.id, now=NOW).status is (
        ClaimStatus.redeemed
    )


def test_points_exchange_coupons_are_not_charged_again_at_use(db_session: Session) -> None:
    _, store, offer = _shop(db_session, kind=OfferKind.points_exchange, points_cost=100)
    points.earn(db_session, openid="oUser", points=100, source_key="signup", now=NOW)
    code = _claim(db_session, offer).code
    claims.redeem(db_session, code=code, store_id=store.id, now=NOW)
    assert points.balance(db_session, "oUser") == 0


# -- giving back ------------------------------------------------------------------------------


def test_a_refund_gives_the_coupon_back_once_and_never_twice(db_session: Session) -> None:
    # litemall#163: a coupon returned twice on refund.
    _, store, offer = _shop(db_session)
    code = _claim(db_session, offer).code
    claims.redeem(db_session, code=code, store_id=store.id, now=NOW, order_ref="order-1")
    back = claims.restore(db_session, code=code, now=NOW, order_ref="order-1")
    assert (back.status, back.restore_count, back.redeemed_at, back.order_ref) == (
        ClaimStatus.claimed,
        1,
        None,
        None,
    )
    # The same refund notified again changes nothing.
    assert claims.restore(db_session, code=code, now=NOW).status is ClaimStatus.claimed
    # Used again and refunded again: this time it does not come back.
    claims.redeem(db_session, code=code, store_id=store.id, now=NOW, order_ref="order-2")
    gone = claims.restore(db_session, code=code, now=NOW, order_ref="order-2")
    assert (gone.status, gone.restore_count, gone.order_ref) == (ClaimStatus.void, 1, "order-2")
    with pytest.raises(CouponVoidError):
        claims.redeem(db_session, code=code, store_id=store.id, now=NOW)


def test_a_refund_after_expiry_voids_the_coupon(db_session: Session) -> None:
    _, store, offer = _shop(db_session, valid_days_after_claim=1)
    code = _claim(db_session, offer).code
    claims.redeem(db_session, code=code, store_id=store.id, now=NOW)
    late = claims.restore(db_session, code=code, now=NOW + timedelta(days=2))
    assert (late.status, late.restore_count) == (ClaimStatus.void, 0)


def test_only_a_redeemed_coupon_is_given_back(db_session: Session) -> None:
    _, store, offer = _shop(db_session)
    code = _claim(db_session, offer).code
    with pytest.raises(CouponNotRedeemedError):
        claims.restore(db_session, code=code, now=NOW)
    claims.redeem(db_session, code=code, store_id=store.id, now=NOW, order_ref="order-1")
    with pytest.raises(CouponNotRedeemedError):
        claims.restore(db_session, code=code, now=NOW, order_ref="order-9")


def test_the_counter_may_undo_until_the_day_is_settled(db_session: Session) -> None:
    merchant, store, offer = _shop(db_session, per_user_limit=2)
    other = make_store(db_session, merchant=merchant, name="分店")
    code = _claim(db_session, offer).code
    claims.redeem(db_session, code=code, store_id=store.id, now=NOW)
    with pytest.raises(CouponStoreMismatchError):
        claims.undo_redemption(db_session, code=code, now=NOW, store_id=other.id)
    undone = claims.undo_redemption(db_session, code=code, now=NOW, store_id=store.id)
    assert (undone.status, undone.restore_count) == (ClaimStatus.claimed, 1)

    late_code = _claim(db_session, offer).code
    claims.redeem(db_session, code=late_code, store_id=store.id, now=NOW)
    next_day = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)  # midnight in Shanghai
    with pytest.raises(CouponUndoTooLateError):
        claims.undo_redemption(db_session, code=late_code, now=next_day)


def test_my_coupons_lists_the_newest_first_with_titles(db_session: Session) -> None:
    first = make_offer(db_session, title_zh="立减10元")
    second = make_offer(
        db_session,
        title_zh="满100减20",
        kind=OfferKind.threshold_off,
        amount_off_fen=2000,
        threshold_fen=10000,
    )
    _claim(db_session, first)
    _claim(db_session, second, now=NOW + timedelta(minutes=1))
    _claim(db_session, first, "oOther")
    mine = claims.user_claims(db_session, "oUser")
    assert [(c.offer_title_zh, c.offer_kind) for c in mine] == [
        ("满100减20", OfferKind.threshold_off),
        ("立减10元", OfferKind.fixed_off),
    ]


def test_the_database_allows_one_restore_per_coupon(db_session: Session) -> None:
    offer = make_offer(db_session)
    coupon = _claim(db_session, offer)
    with pytest.raises(IntegrityError), db_session.begin_nested():
        db_session.execute(
            text("UPDATE claims SET restore_count = 2 WHERE id = :id"), {"id": coupon.id}
        )
