"""The demo offers `tianfu seed demo` writes: active, funded, deterministic, written once, and
found by the nearby lookup, on both backends."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from coupons import seed as offer_seed
from coupons.lookup import best_offers
from coupons.models import Offer, OfferStatus
from coupons.rules import OfferKind, OfferTerms, headline_value_fen
from coupons.seed import CREATED_BY, REVIEWER, TEMPLATES, VALID_DAYS, draw_offers, seed_offers
from lbs.nearby import find_nearby
from lbs.schemas import NearbyQuery
from merchants.models import Merchant, MerchantStatus
from merchants.store_index import LiveStoreIndex
from tianfu.orm import utcnow
from tianfu.seed import chengdu, seed_demo

SEED = 20261128
STORES = 1500  # about a thousand merchants: some three hundred offers
TIANFU_SQUARE = (30.6574, 104.0658)


def _seeded(session: Session) -> list[Offer]:
    return list(
        session.scalars(select(Offer).where(Offer.created_by == CREATED_BY).order_by(Offer.id))
    )


def _snapshot(session: Session) -> list[tuple[Any, ...]]:
    """Each seed offer as its merchant's ref and its terms; the dates as their span, since
    they start when the seed runs."""
    rows = session.execute(
        select(Merchant.external_ref, Offer)
        .join(Merchant, Merchant.id == Offer.merchant_id)
        .where(Offer.created_by == CREATED_BY)
        .order_by(Offer.id)
    ).all()
    return [
        (
            ref,
            offer.kind,
            offer.title_zh,
            offer.description,
            offer.amount_off_fen,
            offer.threshold_fen,
            offer.discount_permille,
            offer.cap_fen,
            offer.gift_value_fen,
            offer.points_cost,
            offer.min_spend_fen,
            offer.weekdays_mask,
            offer.time_windows,
            offer.valid_days_after_claim,
            offer.total_stock,
            offer.budget_fen,
            offer.points_per_yuan,
            offer.status,
            offer.valid_until - offer.valid_from
            if offer.valid_until and offer.valid_from
            else None,
        )
        for ref, offer in rows
    ]


@pytest.mark.parametrize("category", [profile.code for profile in chengdu.CATEGORIES])
def test_every_demo_category_has_offers_whose_budget_covers_the_stock(category: str) -> None:
    templates = TEMPLATES[category]
    assert len(templates) >= 2  # a merchant with two offers draws two different ones
    drawn = [
        data
        for number in range(300)
        for data in draw_offers(SEED, f"demo-m-{number:07d}", category, utcnow())
    ]
    assert {data.title_zh for data in drawn} == {t.title_zh for t in templates}
    for data in drawn:
        # The budget reserved per coupon is what coupons.rules says one coupon may be worth.
        terms = OfferTerms(offer_id=1, merchant_id=1, **data.model_dump(include=_AMOUNTS))
        assert data.budget_fen == data.total_stock * headline_value_fen(terms) > 0
        assert 200 <= data.total_stock <= 5000
        assert data.valid_days_after_claim is not None
        assert 7 <= data.valid_days_after_claim <= 30


_AMOUNTS = {
    "kind",
    "title_zh",
    "amount_off_fen",
    "threshold_fen",
    "discount_permille",
    "cap_fen",
    "gift_value_fen",
    "points_cost",
    "min_spend_fen",
}


def test_seeded_offers_are_active_reviewed_and_funded(db_session: Session) -> None:
    started = utcnow()
    report = seed_demo(db_session, stores=STORES, seed=SEED)

    offers = _seeded(db_session)
    assert report.offers_created == len(offers) > 100
    for offer in offers:
        assert offer.status is OfferStatus.active
        assert (offer.created_by, offer.reviewed_by) == (CREATED_BY, REVIEWER)
        assert offer.claimed_count == offer.claimed_fen == 0
        assert offer.max_benefit_fen > 0
        assert offer.budget_fen >= offer.total_stock * offer.max_benefit_fen
        assert offer.valid_from is not None
        assert offer.valid_until is not None
        assert offer.valid_from.utcoffset() == timedelta(0)  # aware, UTC
        assert started <= offer.valid_from <= utcnow()
        assert offer.valid_until - offer.valid_from == timedelta(days=VALID_DAYS)
    merchants = {
        merchant_id: (str(ref), status)
        for merchant_id, ref, status in db_session.execute(
            select(Merchant.id, Merchant.external_ref, Merchant.status)
        )
    }
    per_merchant = Counter(offer.merchant_id for offer in offers)
    assert all(merchants[m][0].startswith("demo-m-") for m in per_merchant)
    assert all(merchants[m][1] is MerchantStatus.approved for m in per_merchant)
    assert set(per_merchant.values()) == {1, 2}
    approved = sum(status is MerchantStatus.approved for _ref, status in merchants.values())
    assert 0.25 < len(per_merchant) / approved < 0.42  # about a third
    assert any(merchants[m][0].startswith("demo-m-c") for m in per_merchant)  # chains too
    assert {offer.kind for offer in offers} == set(OfferKind)
    assert any(offer.points_per_yuan for offer in offers)
    assert any(offer.weekdays_mask == 0b11111 and offer.time_windows for offer in offers)


def test_the_same_seed_gives_the_same_offers(db_session: Session) -> None:
    runs = []
    for _ in range(2):
        fresh = db_session.begin_nested()  # an empty database each time, as far as seeding goes
        seed_demo(db_session, stores=STORES, seed=SEED)
        runs.append(_snapshot(db_session))
        fresh.rollback()

    assert runs[0] == runs[1]
    assert runs[0]


def test_another_seed_picks_other_merchants_and_offers(db_session: Session) -> None:
    seed_demo(db_session, stores=STORES, seed=SEED)
    ours = {row[:3] for row in _snapshot(db_session)}
    db_session.execute(delete(Offer).where(Offer.created_by == CREATED_BY))

    seed_offers(db_session, seed=SEED + 1)

    theirs = {row[:3] for row in _snapshot(db_session)}
    assert theirs
    assert ours != theirs


def test_rerunning_adds_no_offers_and_growing_adds_only_new_merchants(
    db_session: Session,
) -> None:
    seed_demo(db_session, stores=1000, seed=SEED)
    first = {offer.id: offer.merchant_id for offer in _seeded(db_session)}

    again = seed_demo(db_session, stores=1000, seed=SEED)
    assert again.offers_created == 0
    assert len(_seeded(db_session)) == len(first)

    grown = seed_demo(db_session, stores=STORES, seed=SEED)
    after = {offer.id: offer.merchant_id for offer in _seeded(db_session)}
    added = {offer_id: m for offer_id, m in after.items() if offer_id not in first}
    assert grown.offers_created == len(added) > 0
    assert after.items() >= first.items()
    assert not set(added.values()) & set(first.values())


def test_only_the_first_demo_merchants_are_considered(
    db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(offer_seed, "MERCHANTS_CONSIDERED", 100)
    seed_demo(db_session, stores=STORES, seed=SEED)

    first_ids = db_session.scalars(
        select(Merchant.id)
        .where(Merchant.external_ref.like("demo-m-%"))
        .order_by(Merchant.id)
        .limit(100)
    ).all()
    assert {offer.merchant_id for offer in _seeded(db_session)} <= set(first_ids)


def test_a_nearby_search_in_chengdu_shows_best_offers(db_session: Session) -> None:
    seed_demo(db_session, stores=STORES, seed=SEED)
    # The index reads through its own sessions, bound to the test's connection.
    factory = sessionmaker(bind=db_session.connection(), join_transaction_mode="create_savepoint")
    index = LiveStoreIndex(factory)
    index.build()

    found = find_nearby(
        db_session,
        index,
        NearbyQuery(lat=TIANFU_SQUARE[0], lng=TIANFU_SQUARE[1], limit=50),
        now=utcnow(),
        offers=best_offers,
    )

    with_offer = [store for store in found if store.best_offer is not None]
    assert len(with_offer) >= 3
    titles = dict(
        iter(
            db_session.execute(
                select(Offer.id, Offer.title_zh).where(Offer.status == OfferStatus.active)
            )
        )
    )
    for store in with_offer:
        assert store.best_offer is not None
        assert titles[store.best_offer.id] == store.best_offer.title
    assert len({store.category.code for store in with_offer}) >= 2
