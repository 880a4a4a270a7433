"""The demo offers: what the demo data set's Chengdu merchants run with the bank.

`tianfu seed demo` calls :func:`seed_offers` after the stores and the cinemas. Only the first
:data:`MERCHANTS_CONSIDERED` demo merchants by id are looked at, so the work is the same few
seconds whatever the store count (a million stores make some 650,000 merchants). Merchant ids
follow the store order, so that slice holds every chain brand (their branches are all over the
city) and the independents of the first few thousand stores, which are spread over the city too.
Of those that are approved, about a third get an offer and some of those a second, drawn per
merchant from (seed, merchant ref) among offers typical of the merchant's category.

Every offer is checked by `OfferCreate`, written by `coupons.service.create_offer` and goes through
the real review: submitted, then approved by another account than the one that wrote it
(maker-checker). Re-running skips merchants that already have an offer of the seed, so it adds
only the offers of newly eligible merchants (a bigger store count, a merchant approved since).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from coupons import service
from coupons.models import Offer
from coupons.rules import OfferKind
from coupons.schemas import OfferCreate, TimeWindowIn
from merchants.models import Category, Merchant, MerchantStatus
from tianfu.orm import utcnow

# tianfu.seed.demo.MERCHANT_REF_PREFIX; not imported, since tianfu.seed imports this module.
DEMO_MERCHANT_PREFIX = "demo-m-"
MERCHANTS_CONSIDERED = 2000  # about 700 offers; chains (one offer, every branch) first
OFFER_SHARE = 1 / 3
SECOND_OFFER_SHARE = 0.2  # of the merchants that get an offer
VALID_DAYS = 60
# The two sides of maker-checker: the merchant's staff writes the offer, the bank approves it.
CREATED_BY = "seed:merchant"
REVIEWER = "seed:bank"

STOCKS = (200, 300, 500, 800, 1000, 1500, 2000, 3000, 5000)
DAYS_AFTER_CLAIM = (7, 14, 15, 30)
POINTS_PER_YUAN = (0, 0, 0, 1, 1, 2)  # bank points per yuan paid with the coupon
MONDAY_TO_FRIDAY = (0, 1, 2, 3, 4)  # Asia/Shanghai weekdays, 0 = Monday
LUNCH = (time(11, 0), time(14, 0))  # Asia/Shanghai wall clock, [start, end)
AFTERNOON = (time(14, 0), time(17, 30))


@dataclass(frozen=True)
class Template:
    """An offer a merchant of some category runs: its terms without stock, budget and dates."""

    kind: OfferKind
    title_zh: str
    description: str
    amount_off_fen: int = 0
    threshold_fen: int = 0
    discount_permille: int = 0
    cap_fen: int | None = None
    gift_value_fen: int = 0
    points_cost: int = 0
    min_spend_fen: int = 0
    weekdays: tuple[int, ...] | None = None
    window: tuple[time, time] | None = None

    @property
    def max_benefit_fen(self) -> int:
        # As coupons.rules.headline_value_fen counts it: a percentage at its cap, gifts on top.
        off = self.cap_fen if self.kind is OfferKind.percent_off else self.amount_off_fen
        return (off or 0) + self.gift_value_fen


def threshold_off(threshold_yuan: int, off_yuan: int) -> Template:
    return Template(
        OfferKind.threshold_off,
        f"满{threshold_yuan}减{off_yuan}",
        f"单笔消费满{threshold_yuan}元立减{off_yuan}元",
        amount_off_fen=off_yuan * 100,
        threshold_fen=threshold_yuan * 100,
    )


def percent_off(zhe: str, cap_yuan: int) -> Template:
    # 8.8折 is 88 % paid, 120 permille off.
    permille_off = 1000 - round(float(zhe) * 100)
    return Template(
        OfferKind.percent_off,
        f"{zhe}折最高减{cap_yuan}",
        f"买单享{zhe}折，每单最高减{cap_yuan}元",
        discount_permille=permille_off,
        cap_fen=cap_yuan * 100,
    )


def fixed_off(off_yuan: int, *, min_spend_yuan: int = 0) -> Template:
    spend = f"消费满{min_spend_yuan}元" if min_spend_yuan else "买单"
    return Template(
        OfferKind.fixed_off,
        f"立减{off_yuan}元",
        f"{spend}立减{off_yuan}元",
        amount_off_fen=off_yuan * 100,
        min_spend_fen=min_spend_yuan * 100,
    )


def gift(what: str, value_yuan: int, *, min_spend_yuan: int = 0) -> Template:
    spend = f"消费满{min_spend_yuan}元" if min_spend_yuan else "到店消费"
    return Template(
        OfferKind.gift,
        f"赠{what}",
        f"{spend}赠{what}（价值{value_yuan}元）",
        gift_value_fen=value_yuan * 100,
        min_spend_fen=min_spend_yuan * 100,
    )


def points_for_cash(points: int, off_yuan: int) -> Template:
    return Template(
        OfferKind.points_exchange,
        f"{points}积分兑{off_yuan}元券",
        f"{points}银行积分兑换{off_yuan}元代金券，买单直接抵扣",
        points_cost=points,
        amount_off_fen=off_yuan * 100,
    )


def points_for_gift(points: int, what: str, value_yuan: int) -> Template:
    return Template(
        OfferKind.points_exchange,
        f"{points}积分换{what}",
        f"{points}银行积分兑换{what}（价值{value_yuan}元）",
        points_cost=points,
        gift_value_fen=value_yuan * 100,
    )


def weekdays_only(template: Template, *, window: tuple[time, time] | None = None) -> Template:
    """The same offer limited to Monday to Friday, within `window` if given: 工作日午市满100减20."""
    if window == LUNCH:
        label, when = "工作日午市", "周一至周五11:00-14:00"
    elif window is not None:
        label = "工作日下午茶"
        when = f"周一至周五{window[0]:%H:%M}-{window[1]:%H:%M}"
    else:
        label, when = "工作日", "周一至周五"
    return dataclasses.replace(
        template,
        title_zh=label + template.title_zh,
        description=f"{when}可用，{template.description}",
        weekdays=MONDAY_TO_FRIDAY,
        window=window,
    )


# Offers by category code (migration 0001's taxonomy): what such a shop in Chengdu would run.
TEMPLATES: dict[str, tuple[Template, ...]] = {
    "hotpot": (
        threshold_off(200, 30),
        threshold_off(300, 50),
        weekdays_only(threshold_off(100, 20), window=LUNCH),
        gift("冰粉一份", 8),
        gift("酸梅汤一扎", 18, min_spend_yuan=100),
    ),
    "sichuan": (
        threshold_off(100, 15),
        threshold_off(200, 35),
        percent_off("9", 20),
        weekdays_only(fixed_off(8, min_spend_yuan=40), window=LUNCH),
        gift("凉菜一份", 16, min_spend_yuan=80),
    ),
    "snacks": (
        threshold_off(30, 5),
        fixed_off(3, min_spend_yuan=15),
        gift("冰粉一碗", 5),
        weekdays_only(threshold_off(25, 4), window=LUNCH),
    ),
    "bbq": (
        threshold_off(150, 20),
        percent_off("9", 25),
        gift("啤酒两瓶", 16, min_spend_yuan=100),
    ),
    "food": (
        threshold_off(80, 12),
        percent_off("9", 15),
        weekdays_only(fixed_off(5, min_spend_yuan=25), window=LUNCH),
        gift("饮品一份", 10, min_spend_yuan=50),
    ),
    "coffee": (
        percent_off("8.8", 10),
        threshold_off(50, 8),
        gift("饮品一份", 18, min_spend_yuan=30),
        weekdays_only(percent_off("8", 12), window=AFTERNOON),
        points_for_gift(800, "美式咖啡一杯", 22),
    ),
    "tea": (
        threshold_off(30, 5),
        percent_off("8.5", 8),
        gift("饮品一份", 15, min_spend_yuan=25),
        weekdays_only(fixed_off(3, min_spend_yuan=15), window=AFTERNOON),
    ),
    "supermarket": (
        threshold_off(100, 10),
        threshold_off(200, 25),
        percent_off("9.5", 20),
        points_for_cash(1000, 10),
    ),
    "convenience": (
        threshold_off(30, 5),
        fixed_off(2, min_spend_yuan=10),
        points_for_gift(300, "饮料一瓶", 5),
    ),
    "cinema": (
        fixed_off(10),
        weekdays_only(fixed_off(15)),
        gift("爆米花一份", 25, min_spend_yuan=60),
    ),
    "hotel": (
        threshold_off(300, 50),
        threshold_off(500, 80),
        percent_off("9", 100),
        weekdays_only(percent_off("8.5", 120)),
    ),
    "fitness": (
        threshold_off(1000, 150),
        fixed_off(50, min_spend_yuan=300),
        gift("体验课一节", 99),
    ),
    "entertainment": (
        threshold_off(200, 40),
        weekdays_only(percent_off("8", 50)),
        gift("果盘一份", 38, min_spend_yuan=150),
    ),
    "beauty": (
        threshold_off(200, 30),
        percent_off("8.8", 40),
        gift("护理一次", 58, min_spend_yuan=150),
    ),
}


def draw_offers(
    seed: int, merchant_ref: str, category: str, valid_from: datetime
) -> list[OfferCreate]:
    """The offers merchant `merchant_ref` of `category` runs in data set `seed`: none for about
    two merchants in three; the same (seed, ref) always gives the same terms."""
    rng = random.Random(f"{seed}:offers:{merchant_ref}")  # noqa: S311 - demo data, not secrets
    templates = TEMPLATES.get(category, ())
    if not templates or rng.random() >= OFFER_SHARE:
        return []
    count = 2 if rng.random() < SECOND_OFFER_SHARE else 1
    return [_terms(rng, template, valid_from) for template in rng.sample(templates, count)]


def _terms(rng: random.Random, template: Template, valid_from: datetime) -> OfferCreate:
    stock = rng.choice(STOCKS)
    windows = (
        []
        if template.window is None
        else [TimeWindowIn(start=template.window[0], end=template.window[1])]
    )
    return OfferCreate(
        kind=template.kind,
        title_zh=template.title_zh,
        description=template.description,
        amount_off_fen=template.amount_off_fen,
        threshold_fen=template.threshold_fen,
        discount_permille=template.discount_permille,
        cap_fen=template.cap_fen,
        gift_value_fen=template.gift_value_fen,
        points_cost=template.points_cost,
        min_spend_fen=template.min_spend_fen,
        weekdays=None if template.weekdays is None else list(template.weekdays),
        time_windows=windows,
        valid_from=valid_from,
        valid_until=valid_from + timedelta(days=VALID_DAYS),
        valid_days_after_claim=rng.choice(DAYS_AFTER_CLAIM),
        total_stock=stock,
        # Every coupon reserves the largest benefit it can give when claimed, so this is the
        # budget that lets the whole stock be claimed.
        budget_fen=stock * template.max_benefit_fen,
        points_per_yuan=rng.choice(POINTS_PER_YUAN),
    )


def _candidates(session: Session) -> Sequence[tuple[int, str, str]]:
    """(id, ref, category) of the approved merchants among the first demo merchants by id."""
    first = (
        select(Merchant.id, Merchant.external_ref, Merchant.status, Merchant.category_id)
        .where(Merchant.external_ref.like(f"{DEMO_MERCHANT_PREFIX}%"))
        .order_by(Merchant.id)
        .limit(MERCHANTS_CONSIDERED)
        .subquery()
    )
    rows = session.execute(
        select(first.c.id, first.c.external_ref, Category.code)
        .join(Category, Category.id == first.c.category_id)
        .where(first.c.status == MerchantStatus.approved)
        .order_by(first.c.id)
    ).all()
    return [(merchant_id, str(ref), str(code)) for merchant_id, ref, code in rows]


def seed_offers(session: Session, *, seed: int, now: datetime | None = None) -> int:
    """Give the eligible demo merchants that have no seed offer yet their offers, active and
    valid from `now` (the current time by default) for :data:`VALID_DAYS` days; returns how many
    offers were created. Works inside the caller's transaction and never commits."""
    valid_from = now or utcnow()
    seeded = set(session.scalars(select(Offer.merchant_id).where(Offer.created_by == CREATED_BY)))
    created = 0
    for merchant_id, ref, category in _candidates(session):
        if merchant_id in seeded:
            continue
        for data in draw_offers(seed, ref, category, valid_from):
            offer = service.create_offer(
                session, merchant_id=merchant_id, data=data, created_by=CREATED_BY
            )
            service.submit_for_review(session, offer.id)
            service.approve(session, offer.id, reviewer=REVIEWER, note="演示数据")
            created += 1
    return created
