"""The offer catalog remembers each store's offers for a short while, then reads them again."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from coupons.lookup import OfferCatalog, best_offers
from coupons.models import OfferStatus
from tests.builders import make_merchant, make_offer, make_store


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_catalog_agrees_with_a_fresh_lookup_and_expires(db_session: Session) -> None:
    merchant = make_merchant(db_session)
    store = make_store(db_session, merchant=merchant)
    offer = make_offer(db_session, merchant=merchant, title_zh="立减10元")
    now = datetime.now(UTC)
    clock = FakeClock()
    catalog = OfferCatalog(ttl_s=2.0, clock=clock)

    fresh = best_offers(db_session, store_ids=[store.id], openid=None, now=now)
    assert catalog(db_session, store_ids=[store.id], openid=None, now=now) == fresh
    assert fresh[store.id].title == "立减10元"

    offer.status = OfferStatus.paused
    db_session.flush()
    clock.now += 1.0  # within the time to live: still advertised
    assert store.id in catalog(db_session, store_ids=[store.id], openid=None, now=now)
    clock.now += 1.5  # past it: read again, no longer advertised
    assert catalog(db_session, store_ids=[store.id], openid=None, now=now) == {}


def test_catalog_asks_only_about_stores_whose_merchant_has_offers(db_session: Session) -> None:
    from typing import Any

    from sqlalchemy import event

    generous = make_merchant(db_session)
    plain = make_merchant(db_session, name="无优惠小店")
    with_offer = make_store(db_session, merchant=generous)
    without = make_store(db_session, merchant=plain, name="无优惠小店(一店)")
    make_offer(db_session, merchant=generous, title_zh="立减10元")
    merchants = {with_offer.id: generous.id, without.id: plain.id}
    now = datetime.now(UTC)
    clock = FakeClock()
    catalog = OfferCatalog(ttl_s=2.0, clock=clock, merchant_of=merchants.get)

    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    connection = db_session.connection()
    event.listen(connection, "before_cursor_execute", count)
    try:
        both = catalog(db_session, store_ids=[with_offer.id, without.id], openid=None, now=now)
        assert both == best_offers(
            db_session, store_ids=[with_offer.id, without.id], openid=None, now=now
        )
        assert set(both) == {with_offer.id}
        statements.clear()
        clock.now += 3.0  # everything expired: the merchants are read again, stores are not
        catalog(db_session, store_ids=[without.id], openid=None, now=now)
        assert len(statements) == 1
        statements.clear()
        catalog(db_session, store_ids=[without.id], openid=None, now=now)
        assert statements == []  # within the time to live: no query at all
    finally:
        event.remove(connection, "before_cursor_execute", count)


def test_a_chains_offers_are_read_once_for_all_its_stores_with_their_scopes(
    db_session: Session,
) -> None:
    from typing import Any

    from sqlalchemy import event

    chain = make_merchant(db_session, name="蜀味连锁")
    first = make_store(db_session, merchant=chain, name="蜀味连锁(一店)")
    second = make_store(db_session, merchant=chain, name="蜀味连锁(二店)")
    make_offer(db_session, merchant=chain, title_zh="立减5元", amount_off_fen=500)
    make_offer(
        db_session, merchant=chain, title_zh="一店专享立减20元", amount_off_fen=2000,
        store_ids=[first.id],
    )  # fmt: skip
    merchants = {first.id: chain.id, second.id: chain.id}
    now = datetime.now(UTC)
    catalog = OfferCatalog(ttl_s=2.0, clock=FakeClock(), merchant_of=merchants.get)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    connection = db_session.connection()
    event.listen(connection, "before_cursor_execute", count)
    try:
        at_first = catalog(db_session, store_ids=[first.id], openid=None, now=now)
        assert statements  # read once: the merchants, then the chain's offers and scopes
        statements.clear()
        at_second = catalog(db_session, store_ids=[second.id], openid=None, now=now)
        assert statements == []  # another store of the same chain: nothing read again
    finally:
        event.remove(connection, "before_cursor_execute", count)
    assert at_first[first.id].title == "一店专享立减20元"
    assert at_second[second.id].title == "立减5元"  # the scoped offer is not the second store's
    for store in (first, second):
        fresh = best_offers(db_session, store_ids=[store.id], openid=None, now=now)
        assert catalog(db_session, store_ids=[store.id], openid=None, now=now) == fresh
