"""Claiming a coupon, redeeming it once, and giving it back once after a refund.

A claim, in one transaction (the caller's):

1. the same (openid, client_request_id) seen before returns the coupon issued then;
2. the offer is read and judged: status, validity, new customers, points, geo-targeting (an
   early refusal of a sold-out offer saves the writes below);
3. in a SAVEPOINT, so a refusal leaves nothing behind even if the caller commits:
   the per-user counter (`offer_user_counts`, one upsert whose DO UPDATE only fires while
   `claimed < per_user_limit`), the claim row, the points of a points exchange, and last the
   ONE conditional UPDATE of the offer row that takes stock, budget and the day's quota at once.
   That UPDATE comes last because on PostgreSQL it holds the hot offer row's lock until commit;
   everything before it runs in parallel across users.

Redeem and restore are conditional UPDATEs of the claim's status: of many concurrent requests
for one code exactly one finds `status = 'claimed'` (or `'redeemed'`) and changes it.

SQLite: a WAL transaction that has read cannot start writing once another connection has
committed (SQLITE_BUSY_SNAPSHOT, which busy_timeout does not retry), so on SQLite each operation
here opens with a write that takes the database's write lock first. Call them at the start of a
transaction there.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from geoalchemy2.shape import to_shape
from shapely.geometry import Point
from sqlalchemy import (
    CursorResult,
    Integer,
    Row,
    Table,
    Update,
    and_,
    bindparam,
    case,
    false,
    func,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from coupons import errors, points
from coupons.codes import is_valid_code, new_code, normalise_code
from coupons.models import (
    Claim,
    ClaimStatus,
    Offer,
    OfferStatus,
    OfferStore,
    OfferUserCount,
    PointsKind,
)
from coupons.rules import ApplyContext, OfferKind, evaluate
from coupons.service import get_offer, terms_of
from merchants.errors import StoreNotFoundError
from merchants.models import Store, StoreStatus
from merchants.opening_hours import SHANGHAI
from spatial_index.geometry import haversine_m
from tianfu.db import upsert_insert
from tianfu.errors import InvalidInputError
from tianfu.geo import CoordinateRangeError, check_lat_lng

_OFFERS = cast(Table, Offer.__table__)
_CLAIMS = cast(Table, Claim.__table__)
_USER_COUNTS = cast(Table, OfferUserCount.__table__)
# A new code colliding with a live one is a 1-in-10^11 event per coupon; a few draws suffice.
_CODE_ATTEMPTS = 3


@dataclass(frozen=True)
class UserCoupon:
    claim: Claim
    offer_title_zh: str
    offer_kind: OfferKind
    merchant_id: int


def _lock_sqlite(session: Session) -> None:
    """Take SQLite's write lock now, before any read (see the module docstring)."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(_USER_COUNTS).where(false()).values(claimed=_USER_COUNTS.c.claimed))


def _rowcount(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


def shanghai_day(moment: datetime) -> int:
    local = moment.astimezone(SHANGHAI)
    return local.year * 10000 + local.month * 100 + local.day


# -- claiming ---------------------------------------------------------------------------------


def claim(
    session: Session,
    *,
    offer_id: int,
    openid: str,
    client_request_id: str,
    now: datetime,
    lat_gcj02: float | None = None,
    lng_gcj02: float | None = None,
    is_new_customer: bool = False,
) -> Claim:
    _lock_sqlite(session)
    # One narrow query answers most requests of a busy offer: a repeat of an earlier request,
    # or an offer already sold out or not active; only what remains reads the whole offer.
    precheck = _precheck(session, offer_id, openid, client_request_id)
    if precheck.earlier_id is not None:
        earlier = _by_request(session, openid, client_request_id, offer_id)
        assert earlier is not None
        return earlier
    _refuse_early(precheck)
    offer = get_offer(session, offer_id, fresh=True, with_scope=False)
    _check_claimable(session, offer, openid=openid, now=now, is_new_customer=is_new_customer)
    _check_geo(session, offer, lat_gcj02, lng_gcj02)
    for attempt in range(_CODE_ATTEMPTS):
        try:
            with session.begin_nested():
                return _issue(session, offer, openid, client_request_id, now)
        except errors.CouponLimitReachedError:
            # On PostgreSQL a concurrent retry of this very request may have taken the user's
            # last slot while we waited on the counter row: then its coupon is the answer.
            if (earlier := _by_request(session, openid, client_request_id, offer_id)) is not None:
                return earlier
            raise
        except IntegrityError:
            # The same, met on the claim's unique (openid, client_request_id); otherwise the
            # new code collided with a live one, and another is drawn.
            if (earlier := _by_request(session, openid, client_request_id, offer_id)) is not None:
                return earlier
            if attempt == _CODE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


# The offer's counters, and the coupon an earlier request with this id issued (of any offer:
# reusing a request id for another offer is refused by _by_request).
# Over tables, not ORM entities: the ORM's compile and load steps would cost more than the
# query, on the path most requests to a sold-out offer take.
_PRECHECK = select(
    _OFFERS.c.status,
    _OFFERS.c.claimed_count,
    _OFFERS.c.total_stock,
    _OFFERS.c.claimed_fen,
    _OFFERS.c.max_benefit_fen,
    _OFFERS.c.budget_fen,
    select(_CLAIMS.c.id)
    .where(
        _CLAIMS.c.openid == bindparam("openid"),
        _CLAIMS.c.client_request_id == bindparam("request_id"),
    )
    .scalar_subquery()
    .label("earlier_id"),
).where(_OFFERS.c.id == bindparam("offer_id"))


def refuse_early(session: Session, *, offer_id: int, openid: str, client_request_id: str) -> None:
    """Raise the refusal the offer's counters already decide (unknown, inactive, sold out),
    reading one row and writing nothing, so it may run before any transaction (in autocommit on
    PostgreSQL: one round trip for the many requests that reach a sold-out offer). A repeat of an
    earlier request is never refused here: `claim` returns its coupon."""
    precheck = _precheck(session, offer_id, openid, client_request_id)
    if precheck.earlier_id is None:
        _refuse_early(precheck)


def _precheck(
    session: Session, offer_id: int, openid: str, client_request_id: str
) -> Row[*tuple[Any, ...]]:
    params = {"offer_id": offer_id, "openid": openid, "request_id": client_request_id}
    precheck = session.connection().execute(_PRECHECK, params).one_or_none()
    if precheck is None:
        raise errors.OfferNotFoundError(f"优惠 {offer_id} 不存在")
    return precheck


def _refuse_early(row: Row[*tuple[Any, ...]]) -> None:
    """The refusals the offer's counters decide, before reading the offer; the conditional
    UPDATE that takes stock checks them again atomically."""
    if row.status is not OfferStatus.active:
        raise errors.OfferNotActiveError("该优惠未开始或已结束")
    if row.claimed_count >= row.total_stock:
        raise errors.CouponOutOfStockError("优惠券已抢光")
    if row.claimed_fen + row.max_benefit_fen > row.budget_fen:
        raise errors.CouponBudgetExhaustedError("活动预算已用完，优惠券已抢光")


def _by_request(
    session: Session, openid: str, client_request_id: str, offer_id: int
) -> Claim | None:
    earlier = session.scalars(
        select(Claim).where(Claim.openid == openid, Claim.client_request_id == client_request_id)
    ).one_or_none()
    if earlier is not None and earlier.offer_id != offer_id:
        raise errors.ClaimRequestConflictError("同一请求编号已用于领取另一张券")
    return earlier


def _check_claimable(
    session: Session, offer: Offer, *, openid: str, now: datetime, is_new_customer: bool
) -> None:
    if offer.status is not OfferStatus.active:
        raise errors.OfferNotActiveError("该优惠未开始或已结束")
    # Early answers from the row just read; the conditional UPDATE re-checks them atomically.
    if offer.claimed_count >= offer.total_stock:
        raise errors.CouponOutOfStockError("优惠券已抢光")
    if offer.claimed_fen + offer.max_benefit_fen > offer.budget_fen:
        raise errors.CouponBudgetExhaustedError("活动预算已用完，优惠券已抢光")
    # Weekday and time-of-day windows limit when a coupon is USED, not when it is claimed; a
    # claim is at no store, so scope is not judged either.
    terms = replace(offer.terms(None), weekdays=None, time_windows=())
    exchange = offer.kind is OfferKind.points_exchange
    balance = points.balance(session, openid) if exchange else None
    context = ApplyContext(now, 0, offer.merchant_id, None, is_new_customer, balance)
    verdict = evaluate(terms, context)
    if verdict.applies:
        return
    # Points are judged last: refused for points only if everything else would pass.
    if exchange and evaluate(replace(terms, points_cost=0), context).applies:
        raise errors.PointsInsufficientError(verdict.reason_zh)
    raise errors.OfferNotClaimableError(f"无法领取：{verdict.reason_zh}")


def _check_geo(session: Session, offer: Offer, lat: float | None, lng: float | None) -> None:
    """Within claim_radius_m of one of the offer's stores, or inside claim_area_gcj02 (either
    will do when both are set). Coordinates are GCJ-02, as WeChat reports them."""
    if offer.claim_radius_m is None and offer.claim_area_gcj02 is None:
        return
    if lat is None or lng is None:
        raise errors.ClaimLocationRequiredError("请允许获取位置，以确认您在活动范围内")
    try:
        check_lat_lng(lat, lng)
    except CoordinateRangeError as exc:
        raise InvalidInputError(str(exc)) from exc
    # covers(), not contains(): a user standing exactly on the drawn border is inside.
    if offer.claim_area_gcj02 is not None and to_shape(offer.claim_area_gcj02).covers(
        Point(lng, lat)
    ):
        return
    if offer.claim_radius_m is not None and _nearest_store_m(session, offer, lat, lng) <= float(
        offer.claim_radius_m
    ):
        return
    raise errors.OutsideClaimAreaError("您不在活动范围内，暂不能领取")


def _nearest_store_m(session: Session, offer: Offer, lat: float, lng: float) -> float:
    scoped = list(
        session.scalars(select(OfferStore.store_id).where(OfferStore.offer_id == offer.id))
    )
    statement = select(func.ST_Y(Store.location_gcj02), func.ST_X(Store.location_gcj02)).where(
        Store.merchant_id == offer.merchant_id, Store.status != StoreStatus.closed
    )
    if scoped:
        statement = statement.where(Store.id.in_(scoped))
    distances = [haversine_m(lat, lng, s_lat, s_lng) for s_lat, s_lng in session.execute(statement)]
    return min(distances, default=float("inf"))


def _expires_at(offer: Offer, now: datetime) -> datetime | None:
    # N days after claim means N x 24 hours, and never past the offer's own end.
    ends = [offer.valid_until]
    if offer.valid_days_after_claim is not None:
        ends.append(now + timedelta(days=offer.valid_days_after_claim))
    return min((end for end in ends if end is not None), default=None)


def _issue(
    session: Session, offer: Offer, openid: str, client_request_id: str, now: datetime
) -> Claim:
    counted = session.execute(
        _count_statement(session.get_bind().dialect.name),
        {"p_offer_id": offer.id, "p_openid": openid, "p_limit": offer.per_user_limit},
    ).scalar_one_or_none()
    if counted is None:
        raise errors.CouponLimitReachedError(f"每人限领{offer.per_user_limit}张，您已领过")
    coupon = Claim(
        offer_id=offer.id,
        openid=openid,
        client_request_id=client_request_id,
        code=new_code(),
        status=ClaimStatus.claimed,
        reserved_fen=offer.max_benefit_fen,
        claimed_at=now,
        expires_at=_expires_at(offer, now),
        restore_count=0,
    )
    session.add(coupon)
    session.flush()
    if offer.kind is OfferKind.points_exchange:
        points.post(
            session,
            openid=openid,
            delta=-offer.points_cost,
            kind=PointsKind.exchange,
            source_key=f"claim:{coupon.id}",
            now=now,
        )
    _take_stock(session, offer, now)
    return coupon


@lru_cache(maxsize=2)
def _count_statement(dialect: str) -> ReturningInsert[tuple[int]]:
    # Built once per backend and run with parameters: building it costs more than running it.
    insert = upsert_insert(dialect)
    counts = _USER_COUNTS.c
    statement: ReturningInsert[tuple[int]] = (
        insert(_USER_COUNTS)
        .values(offer_id=bindparam("p_offer_id"), openid=bindparam("p_openid"), claimed=1)
        .on_conflict_do_update(
            index_elements=[counts.offer_id, counts.openid],
            set_={"claimed": counts.claimed + 1},
            where=counts.claimed < bindparam("p_limit"),
        )
        .returning(counts.claimed)
    )
    return statement


def _take_stock_statement() -> Update:
    o = _OFFERS.c
    # Parameter names differ from column names: SQLAlchemy reserves those in UPDATE … SET.
    day = bindparam("p_day", type_=Integer)
    # In SET, every column reads the row as it was, so both CASEs see the old day_key.
    same_day = o.day_key >= day
    return (
        update(_OFFERS)
        .where(
            o.id == bindparam("p_offer_id"),
            o.status == OfferStatus.active,
            # Terms edited since we read them would make reserved_fen and the checks stale.
            o.terms_version == bindparam("p_terms_version"),
            o.claimed_count < o.total_stock,
            o.claimed_fen + o.max_benefit_fen <= o.budget_fen,
            or_(o.per_day_limit.is_(None), o.day_key < day, o.day_claimed < o.per_day_limit),
        )
        .values(
            claimed_count=o.claimed_count + 1,
            claimed_fen=o.claimed_fen + o.max_benefit_fen,
            day_claimed=case((same_day, o.day_claimed + 1), else_=1),
            day_key=case((same_day, o.day_key), else_=day),
            # A claim is not an edit of the offer: keep updated_at (its onupdate would fire).
            updated_at=o.updated_at,
        )
    )


_TAKE_STOCK = _take_stock_statement()


def _take_stock(session: Session, offer: Offer, now: datetime) -> None:
    o = _OFFERS.c
    taken = session.execute(
        _TAKE_STOCK,
        {
            "p_offer_id": offer.id,
            "p_terms_version": offer.terms_version,
            "p_day": shanghai_day(now),
        },
    )
    session.expire(offer, ["claimed_count", "claimed_fen", "day_key", "day_claimed"])
    if _rowcount(taken) == 1:
        return
    now_row = session.execute(select(_OFFERS).where(o.id == offer.id)).one()
    if now_row.status != OfferStatus.active:
        raise errors.OfferNotActiveError("该优惠未开始或已结束")
    if now_row.terms_version != offer.terms_version:
        raise errors.OfferChangedError("优惠内容已更新，请刷新后重试")
    if now_row.claimed_count >= now_row.total_stock:
        raise errors.CouponOutOfStockError("优惠券已抢光")
    if now_row.claimed_fen + now_row.max_benefit_fen > now_row.budget_fen:
        raise errors.CouponBudgetExhaustedError("活动预算已用完，优惠券已抢光")
    raise errors.CouponDailyLimitReachedError("今日优惠券已领完，明天再来")


def user_claims(session: Session, openid: str) -> list[UserCoupon]:
    """The user's coupons ("my coupons"), newest first, with their offers' titles: one query."""
    rows = session.execute(
        select(Claim, Offer.title_zh, Offer.kind, Offer.merchant_id)
        .join(Offer, Offer.id == Claim.offer_id)
        .where(Claim.openid == openid)
        .order_by(Claim.claimed_at.desc(), Claim.id.desc())
    ).all()
    return [UserCoupon(row[0], row[1], row[2], row[3]) for row in rows]


# -- redeeming and giving back ----------------------------------------------------------------


def _checked_code(code: str) -> str:
    if not is_valid_code(code):
        raise errors.InvalidCouponCodeError("券码有误，请核对后重新输入")
    return normalise_code(code)


def _by_code(session: Session, code: str) -> Claim:
    found = session.scalars(
        select(Claim).where(Claim.code == code).execution_options(populate_existing=True)
    ).one_or_none()
    if found is None:
        raise errors.CouponNotFoundError("券码不存在")
    return found


def _refuse_unusable(coupon: Claim, now: datetime) -> None:
    if coupon.status is ClaimStatus.redeemed:
        raise errors.CouponAlreadyRedeemedError("该券已使用")
    if coupon.status is ClaimStatus.void:
        raise errors.CouponVoidError("该券已作废")
    if coupon.status is ClaimStatus.expired or (
        coupon.expires_at is not None and coupon.expires_at <= now
    ):
        raise errors.CouponExpiredError("该券已过期")


def redeem(
    session: Session,
    *,
    code: str,
    store_id: int,
    now: datetime,
    order_ref: str | None = None,
    payable_fen: int | None = None,
) -> Claim:
    """Use a coupon at `store_id`, once. With `payable_fen` (checkout) the spend is judged too;
    without (a counter verifying the code) only store, time and validity are.

    A coupon in a user's hands stays usable until it expires whatever happens to its offer later:
    pausing or ending an offer stops claims, not use.
    """
    normalised = _checked_code(code)
    _lock_sqlite(session)
    coupon = _by_code(session, normalised)
    _refuse_unusable(coupon, now)
    store = session.get(Store, store_id)
    if store is None:
        raise StoreNotFoundError(f"store {store_id} does not exist")
    offer = get_offer(session, coupon.offer_id)
    # New-customer status and the points price were settled when the coupon was claimed.
    use_terms = replace(terms_of(offer), new_customers_only=False, points_cost=0)
    context = ApplyContext(now, store_id, store.merchant_id, payable_fen, points_balance=0)
    verdict = evaluate(use_terms, context)
    if not verdict.applies:
        raise errors.CouponNotApplicableError(f"该券暂不可用：{verdict.reason_zh}")
    c = _CLAIMS.c
    result = session.execute(
        update(_CLAIMS)
        .where(
            c.id == coupon.id,
            c.status == ClaimStatus.claimed,
            or_(c.expires_at.is_(None), c.expires_at > now),
        )
        .values(
            status=ClaimStatus.redeemed,
            redeemed_at=now,
            redeemed_store_id=store_id,
            order_ref=order_ref,
        )
    )
    coupon = _by_code(session, normalised)
    if _rowcount(result) == 0:
        _refuse_unusable(coupon, now)
        # Still claimed: a restore slipped in between; the caller may simply try again.
        raise errors.CouponAlreadyRedeemedError("该券状态刚刚变化，请重试")
    return coupon


def restore(session: Session, *, code: str, now: datetime, order_ref: str | None = None) -> Claim:
    """Give a redeemed coupon back after a refund: claimed again if still valid and never given
    back before, else void. A repeated call for the same refund changes nothing. With
    `order_ref`, only a redemption by that order is given back."""
    normalised = _checked_code(code)
    _lock_sqlite(session)
    return _give_back(session, _by_code(session, normalised), now, order_ref=order_ref)


def undo_redemption(
    session: Session, *, code: str, now: datetime, store_id: int | None = None
) -> Claim:
    """The counter's undo, allowed until the day (Asia/Shanghai) of the redemption is settled;
    otherwise the same rules as :func:`restore`. With `store_id`, only the redeeming store may
    undo."""
    normalised = _checked_code(code)
    _lock_sqlite(session)
    coupon = _by_code(session, normalised)
    if coupon.status is ClaimStatus.redeemed:
        if store_id is not None and coupon.redeemed_store_id != store_id:
            raise errors.CouponStoreMismatchError("只能由核销门店撤销")
        assert coupon.redeemed_at is not None
        if shanghai_day(coupon.redeemed_at) != shanghai_day(now):
            raise errors.CouponUndoTooLateError("已过当日结算，不能撤销核销，请走退款")
    return _give_back(session, coupon, now, order_ref=None)


def _give_back(session: Session, coupon: Claim, now: datetime, *, order_ref: str | None) -> Claim:
    c = _CLAIMS.c
    comes_back = and_(c.restore_count == 0, or_(c.expires_at.is_(None), c.expires_at > now))
    conditions = [c.id == coupon.id, c.status == ClaimStatus.redeemed]
    if order_ref is not None:
        conditions.append(c.order_ref == order_ref)
    result = session.execute(
        update(_CLAIMS)
        .where(*conditions)
        .values(
            status=case((comes_back, ClaimStatus.claimed.value), else_=ClaimStatus.void.value),
            restore_count=case((comes_back, c.restore_count + 1), else_=c.restore_count),
            restored_at=now,
            # A coupon that comes back forgets its use; a void one keeps it on record.
            redeemed_at=case((comes_back, null()), else_=c.redeemed_at),
            redeemed_store_id=case((comes_back, null()), else_=c.redeemed_store_id),
            order_ref=case((comes_back, null()), else_=c.order_ref),
        )
    )
    refreshed = _by_code(session, coupon.code)
    if _rowcount(result) == 1:
        return refreshed
    if refreshed.restored_at is not None and refreshed.status is not ClaimStatus.redeemed:
        return refreshed  # this refund was applied already
    if refreshed.status is ClaimStatus.redeemed:
        raise errors.CouponNotRedeemedError("该券不是由这笔订单使用的")
    raise errors.CouponNotRedeemedError("该券尚未使用，无需退还")
