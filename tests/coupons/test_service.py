from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coupons import claims, service
from coupons.errors import (
    InvalidOfferTermsError,
    OfferNotEditableError,
    OfferReviewConflictError,
    OfferTransitionError,
)
from coupons.models import ClaimStatus, OfferStatus
from coupons.rules import OfferKind, TimeWindow
from coupons.schemas import GeoPointGcj02, OfferCreate, OfferUpdate, TimeWindowIn
from tests.builders import make_merchant, make_offer, make_store

# Tuesday 2026-12-01, 12:00 in Shanghai.
NOW = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)


def _draft(**changes: Any) -> OfferCreate:
    fields: dict[str, Any] = {
        "kind": OfferKind.threshold_off,
        "title_zh": "满100减20",
        "amount_off_fen": 2000,
        "threshold_fen": 10000,
        "total_stock": 50,
        "budget_fen": 100_000,
    }
    return OfferCreate(**(fields | changes))


def _pending(session: Session, **changes: Any) -> int:
    merchant = make_merchant(session)
    offer = service.create_offer(
        session, merchant_id=merchant.id, data=_draft(**changes), created_by="maker"
    )
    service.submit_for_review(session, offer.id)
    return offer.id


def test_a_new_offer_is_a_draft_reserving_its_largest_benefit_per_coupon(
    db_session: Session,
) -> None:
    merchant = make_merchant(db_session)
    data = _draft(
        kind=OfferKind.percent_off,
        title_zh="8.8折，最高减30元",
        amount_off_fen=0,
        threshold_fen=0,
        discount_permille=120,
        cap_fen=3000,
        gift_value_fen=500,
    )
    offer = service.create_offer(db_session, merchant_id=merchant.id, data=data, created_by="m")
    assert offer.status is OfferStatus.draft
    # The cap plus the gift: no coupon of this offer can ever cost more.
    assert offer.max_benefit_fen == 3500
    assert (offer.claimed_count, offer.claimed_fen, offer.terms_version) == (0, 0, 1)


def test_an_offer_goes_live_through_review_by_someone_else(db_session: Session) -> None:
    offer_id = _pending(db_session)
    offer = service.approve(db_session, offer_id, reviewer="checker", note="ok")
    assert offer.status is OfferStatus.active
    assert offer.reviewed_by == "checker"
    assert offer.reviewed_at is not None


def test_the_author_cannot_approve_their_own_offer(db_session: Session) -> None:
    offer_id = _pending(db_session)
    with pytest.raises(OfferReviewConflictError):
        service.approve(db_session, offer_id, reviewer="maker")
    assert service.get_offer(db_session, offer_id).status is OfferStatus.pending_review


def test_the_last_editor_cannot_approve_either(db_session: Session) -> None:
    offer = make_offer(db_session, status=OfferStatus.draft, created_by="maker")
    service.update_offer(
        db_session, offer.id, changes=OfferUpdate(total_stock=80), edited_by="editor"
    )
    service.submit_for_review(db_session, offer.id)
    with pytest.raises(OfferReviewConflictError):
        service.approve(db_session, offer.id, reviewer="editor")
    assert service.approve(db_session, offer.id, reviewer="third").status is OfferStatus.active


def test_a_rejected_offer_returns_to_draft_with_the_reason(db_session: Session) -> None:
    offer_id = _pending(db_session)
    with pytest.raises(InvalidOfferTermsError):
        service.reject(db_session, offer_id, reviewer="checker", reason="  ")
    offer = service.reject(db_session, offer_id, reviewer="checker", reason="标题与规则不符")
    assert offer.status is OfferStatus.draft
    assert offer.review_note == "标题与规则不符"


def test_only_a_pending_offer_can_be_approved(db_session: Session) -> None:
    offer = make_offer(db_session, status=OfferStatus.draft)
    with pytest.raises(OfferTransitionError, match="草稿"):
        service.approve(db_session, offer.id, reviewer="checker")


def test_pause_resume_and_end(db_session: Session) -> None:
    offer = make_offer(db_session)
    assert service.pause(db_session, offer.id).status is OfferStatus.paused
    with pytest.raises(OfferTransitionError):
        service.pause(db_session, offer.id)
    assert service.resume(db_session, offer.id).status is OfferStatus.active
    assert service.end(db_session, offer.id).status is OfferStatus.ended
    for step in (service.resume, service.pause, service.end, service.submit_for_review):
        with pytest.raises(OfferTransitionError):
            step(db_session, offer.id)


def test_a_live_offer_cannot_be_edited(db_session: Session) -> None:
    offer = make_offer(db_session)
    with pytest.raises(OfferNotEditableError):
        service.update_offer(
            db_session, offer.id, changes=OfferUpdate(title_zh="改"), edited_by="x"
        )


def test_editing_a_paused_offer_sends_it_back_to_review(db_session: Session) -> None:
    offer = make_offer(db_session)
    service.pause(db_session, offer.id)
    edited = service.update_offer(
        db_session, offer.id, changes=OfferUpdate(amount_off_fen=1500), edited_by="maker"
    )
    assert edited.status is OfferStatus.draft
    assert edited.terms_version == 2
    assert edited.max_benefit_fen == 1500


def test_an_edit_is_checked_as_a_whole(db_session: Session) -> None:
    offer = make_offer(
        db_session,
        status=OfferStatus.draft,
        kind=OfferKind.threshold_off,
        amount_off_fen=2000,
        threshold_fen=10000,
    )
    with pytest.raises(InvalidOfferTermsError, match="threshold"):
        service.update_offer(
            db_session, offer.id, changes=OfferUpdate(amount_off_fen=20000), edited_by="maker"
        )
    assert service.get_offer(db_session, offer.id, fresh=True).amount_off_fen == 2000


def test_an_edit_keeps_what_it_does_not_mention(db_session: Session) -> None:
    merchant = make_merchant(db_session)
    store = make_store(db_session, merchant=merchant)
    make_store(db_session, merchant=merchant, name="另一家店")
    area = [
        GeoPointGcj02(lat_gcj02=30.0, lng_gcj02=104.0),
        GeoPointGcj02(lat_gcj02=30.0, lng_gcj02=104.1),
        GeoPointGcj02(lat_gcj02=30.1, lng_gcj02=104.1),
    ]
    offer = make_offer(
        db_session,
        merchant=merchant,
        status=OfferStatus.draft,
        weekdays=[0, 1, 2],
        time_windows=[TimeWindowIn(start=time(11), end=time(0))],
        store_ids=[store.id],
        claim_area_gcj02=area,
        valid_until=NOW + timedelta(days=30),
    )
    before = service.terms_of(offer)
    service.update_offer(db_session, offer.id, changes=OfferUpdate(priority=5), edited_by="m")
    after = service.terms_of(service.get_offer(db_session, offer.id, fresh=True))
    assert after.priority == 5
    assert after == type(before)(**{**before.__dict__, "priority": 5})


def test_terms_of_reads_the_columns_as_the_rules_expect(db_session: Session) -> None:
    merchant = make_merchant(db_session)
    store = make_store(db_session, merchant=merchant)
    offer = make_offer(
        db_session,
        merchant=merchant,
        weekdays=[5, 6],
        time_windows=[TimeWindowIn(start=time(17), end=time(0))],
        store_ids=[store.id],
        valid_from=NOW,
        new_customers_only=True,
    )
    terms = service.terms_of(offer)
    assert terms.offer_id == offer.id
    assert terms.weekdays == frozenset({5, 6})
    assert terms.time_windows == (TimeWindow(time(17), time(0)),)
    assert terms.store_ids == frozenset({store.id})
    assert terms.valid_from == NOW
    assert terms.new_customers_only


def test_percent_off_needs_a_cap_so_its_budget_is_bounded() -> None:
    with pytest.raises(ValidationError, match="cap_fen"):
        _draft(kind=OfferKind.percent_off, amount_off_fen=0, threshold_fen=0, discount_permille=100)


def test_the_budget_must_cover_at_least_one_coupon(db_session: Session) -> None:
    merchant = make_merchant(db_session)
    with pytest.raises(InvalidOfferTermsError):
        service.create_offer(
            db_session, merchant_id=merchant.id, data=_draft(budget_fen=1999), created_by="m"
        )


def test_the_store_scope_is_limited_to_the_merchants_own_stores(db_session: Session) -> None:
    merchant = make_merchant(db_session)
    foreign = make_store(db_session)
    with pytest.raises(InvalidOfferTermsError, match=str(foreign.id)):
        service.create_offer(
            db_session,
            merchant_id=merchant.id,
            data=_draft(store_ids=[foreign.id]),
            created_by="m",
        )


def test_stock_cannot_be_set_below_what_was_claimed(db_session: Session) -> None:
    offer = make_offer(db_session, total_stock=5)
    for n in range(3):
        claims.claim(db_session, offer_id=offer.id, openid=f"o{n}", client_request_id="r", now=NOW)
    service.pause(db_session, offer.id)
    with pytest.raises(InvalidOfferTermsError):
        service.update_offer(
            db_session, offer.id, changes=OfferUpdate(total_stock=2), edited_by="m"
        )


def test_the_database_refuses_oversold_stock_and_overspent_budget(db_session: Session) -> None:
    offer = make_offer(db_session, total_stock=5, budget_fen=5000)
    for statement in (
        "UPDATE offers SET claimed_count = 6 WHERE id = :id",
        "UPDATE offers SET claimed_fen = 5001 WHERE id = :id",
        "UPDATE offers SET amount_off_fen = -1 WHERE id = :id",
    ):
        with pytest.raises(IntegrityError), db_session.begin_nested():
            db_session.execute(text(statement), {"id": offer.id})


@contextmanager
def _counting_statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_active_offers_for_stores_in_two_queries(db_session: Session, engine: Engine) -> None:
    hotpot = make_merchant(db_session)
    tea = make_merchant(db_session, name="茶馆", category_code="tea")
    a = make_store(db_session, merchant=hotpot, name="A")
    b = make_store(db_session, merchant=hotpot, name="B")
    c = make_store(db_session, merchant=tea, name="C")
    everywhere = make_offer(db_session, merchant=hotpot, title_zh="全部门店")
    only_b = make_offer(db_session, merchant=hotpot, title_zh="仅B", store_ids=[b.id])
    tea_offer = make_offer(db_session, merchant=tea, title_zh="茶")
    make_offer(db_session, merchant=hotpot, title_zh="暂停", status=OfferStatus.paused)
    make_offer(db_session, merchant=hotpot, title_zh="过期", valid_until=NOW)
    sold_out = make_offer(db_session, merchant=tea, title_zh="抢光", total_stock=1)
    claims.claim(db_session, offer_id=sold_out.id, openid="o", client_request_id="r", now=NOW)
    store_ids = [a.id, b.id, c.id, 999_999]
    db_session.expire_all()

    with _counting_statements(engine) as statements:
        found = service.active_offers_for_stores(db_session, store_ids, NOW)
    assert len(statements) <= 2
    assert {store: [t.offer_id for t in terms] for store, terms in found.items()} == {
        store_ids[0]: [everywhere.id],
        store_ids[1]: [everywhere.id, only_b.id],
        store_ids[2]: [tea_offer.id],
        999_999: [],
    }


def test_figures_show_stock_budget_and_what_became_of_the_coupons(db_session: Session) -> None:
    merchant = make_merchant(db_session)
    store = make_store(db_session, merchant=merchant)
    offer = make_offer(db_session, merchant=merchant)
    codes = [
        claims.claim(
            db_session, offer_id=offer.id, openid=f"o{n}", client_request_id="r", now=NOW
        ).code
        for n in range(4)
    ]
    claims.redeem(db_session, code=codes[0], store_id=store.id, now=NOW)
    claims.redeem(db_session, code=codes[1], store_id=store.id, now=NOW)
    claims.restore(db_session, code=codes[1], now=NOW)
    figures = service.offer_figures(db_session, offer.id)
    assert figures == service.OfferFigures(
        stock_left=96,
        budget_left_fen=1_000_000 - 4000,
        claimed=4,
        redeemed=1,
        restored=1,
        expired=0,
        void=0,
    )


def test_the_expiry_job_expires_offers_and_coupons_once(db_session: Session) -> None:
    offer = make_offer(db_session, valid_until=NOW + timedelta(days=1))
    kept = make_offer(db_session, valid_days_after_claim=3)
    old = claims.claim(db_session, offer_id=offer.id, openid="a", client_request_id="1", now=NOW)
    longer = claims.claim(db_session, offer_id=kept.id, openid="a", client_request_id="2", now=NOW)
    later = NOW + timedelta(days=1)

    first = service.expire_due(db_session, later)
    assert first == service.ExpiryCounts(offers=1, claims=1)
    assert service.expire_due(db_session, later) == service.ExpiryCounts(offers=0, claims=0)
    db_session.expire_all()
    assert service.get_offer(db_session, offer.id).status is OfferStatus.expired
    assert service.get_offer(db_session, kept.id).status is OfferStatus.active
    assert old.status is ClaimStatus.expired
    assert longer.status is ClaimStatus.claimed
