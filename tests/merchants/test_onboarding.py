"""Onboarding: sign up, review (approve, or reject with a reason per field), resubmit as the
next version, suspend and reinstate."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from merchants import onboarding
from merchants.changes import StoreChange
from merchants.errors import (
    ApplicationStateError,
    InvalidReviewError,
    LicenceInUseError,
    UnknownCategoryError,
    UsernameTakenError,
)
from merchants.models import (
    ApplicationStatus,
    Merchant,
    MerchantApplication,
    MerchantStatus,
    PortalRole,
)
from tests.builders import category
from tests.merchants.portal_support import (
    FAST_HASHER,
    PASSWORD,
    application_data,
    make_admin,
    make_applicant,
)
from tianfu.orm import utcnow


def test_sign_up_makes_a_pending_merchant_its_owner_and_version_one(db_session: Session) -> None:
    done = make_applicant(db_session, business_name="川味小馆")
    assert done.merchant.status is MerchantStatus.pending
    assert done.merchant.name == "川味小馆"
    assert done.account.role is PortalRole.merchant_owner
    assert done.account.merchant_id == done.merchant.id
    application = done.application
    assert (application.version, application.status) == (1, ApplicationStatus.submitted)
    assert application.submitted_by == done.account.id
    assert onboarding.current_application(db_session, done.merchant.id) is application


def test_sign_up_refuses_a_taken_username_or_licence_and_an_unknown_category(
    db_session: Session,
) -> None:
    first = make_applicant(db_session)
    with pytest.raises(LicenceInUseError):
        make_applicant(db_session, licence_no=first.application.licence_no)
    with pytest.raises(UnknownCategoryError):
        make_applicant(db_session, category_id=999_999)
    with pytest.raises(UsernameTakenError):
        onboarding.sign_up(
            db_session, username=first.account.username, password=PASSWORD, display_name="",
            data=application_data(db_session), hasher=FAST_HASHER, now=utcnow(),
        )  # fmt: skip


def test_reject_records_a_reason_per_field_and_the_reviewer(db_session: Session) -> None:
    admin = make_admin(db_session)
    done = make_applicant(db_session)
    now = utcnow()
    rejected = onboarding.reject(
        db_session, application_id=done.application.id, reviewer_id=admin.id, now=now,
        reasons={"licence_no": "  与执照照片不符 ", "contact_phone": "", "category": "类目不对"},
    )  # fmt: skip
    assert rejected.status is ApplicationStatus.rejected
    assert rejected.field_reasons == {"licence_no": "与执照照片不符", "category": "类目不对"}
    assert (rejected.reviewed_by, rejected.reviewed_at) == (admin.id, now)
    assert done.merchant.status is MerchantStatus.pending


@pytest.mark.parametrize(
    ("reasons", "message"),
    [
        ({}, "至少为一个字段"),
        ({"licence_no": "   "}, "至少为一个字段"),
        ({"password": "太短"}, "未知字段"),
        ({"licence_no": "长" * 201}, "不能超过200个字符"),
    ],
)
def test_a_rejection_needs_good_reasons(
    db_session: Session, reasons: dict[str, str], message: str
) -> None:
    admin = make_admin(db_session)
    done = make_applicant(db_session)
    with pytest.raises(InvalidReviewError, match=message):
        onboarding.reject(
            db_session, application_id=done.application.id, reviewer_id=admin.id,
            reasons=reasons, now=utcnow(),
        )  # fmt: skip
    assert done.application.status is ApplicationStatus.submitted


def test_a_rejected_application_is_corrected_and_resubmitted_as_the_next_version(
    db_session: Session,
) -> None:
    admin = make_admin(db_session)
    done = make_applicant(db_session, business_name="旧名字")
    with pytest.raises(ApplicationStateError):  # not while it is under review
        onboarding.resubmit(
            db_session, merchant_id=done.merchant.id, account_id=done.account.id,
            data=application_data(db_session), now=utcnow(),
        )  # fmt: skip
    onboarding.reject(
        db_session, application_id=done.application.id, reviewer_id=admin.id,
        reasons={"business_name": "与执照名称不一致"}, now=utcnow(),
    )  # fmt: skip
    fixed = application_data(
        db_session, business_name="新名字", licence_no=done.application.licence_no
    )
    second = onboarding.resubmit(
        db_session, merchant_id=done.merchant.id, account_id=done.account.id, data=fixed,
        now=utcnow(),
    )  # fmt: skip
    assert (second.version, second.status, second.field_reasons) == (
        2, ApplicationStatus.submitted, {},
    )  # fmt: skip
    history = onboarding.application_history(db_session, done.merchant.id)
    assert [(a.version, a.status) for a in history] == [
        (2, ApplicationStatus.submitted), (1, ApplicationStatus.rejected),
    ]  # fmt: skip
    assert history[1].field_reasons == {"business_name": "与执照名称不一致"}
    assert onboarding.previous_version(db_session, second) is history[1]

    approved = onboarding.approve(
        db_session, application_id=second.id, reviewer_id=admin.id, now=utcnow()
    )
    assert approved.status is ApplicationStatus.approved
    merchant = db_session.get(Merchant, done.merchant.id)
    assert merchant is not None
    assert (merchant.status, merchant.name) == (MerchantStatus.approved, "新名字")


def test_an_application_is_reviewed_once(db_session: Session) -> None:
    admin = make_admin(db_session)
    done = make_applicant(db_session)
    onboarding.approve(db_session, application_id=done.application.id, reviewer_id=admin.id,
                       now=utcnow())  # fmt: skip
    with pytest.raises(ApplicationStateError):
        onboarding.approve(db_session, application_id=done.application.id,
                           reviewer_id=admin.id, now=utcnow())  # fmt: skip
    with pytest.raises(ApplicationStateError):
        onboarding.reject(db_session, application_id=done.application.id, reviewer_id=admin.id,
                          reasons={"licence_no": "看不清"}, now=utcnow())  # fmt: skip
    versions = db_session.scalars(
        select(MerchantApplication.status).where(
            MerchantApplication.merchant_id == done.merchant.id
        )
    ).all()
    assert versions == [ApplicationStatus.approved]


def test_approval_goes_through_the_store_change_log(db_session: Session) -> None:
    admin = make_admin(db_session)
    done = make_applicant(db_session)
    onboarding.approve(db_session, application_id=done.application.id, reviewer_id=admin.id,
                       now=utcnow())  # fmt: skip
    logged = db_session.scalars(
        select(StoreChange).where(StoreChange.merchant_id == done.merchant.id)
    ).all()
    assert len(logged) == 1


def test_only_approved_merchants_are_suspended_and_only_suspended_reinstated(
    db_session: Session,
) -> None:
    admin = make_admin(db_session)
    done = make_applicant(db_session)
    with pytest.raises(ApplicationStateError):
        onboarding.suspend(db_session, merchant_id=done.merchant.id)
    onboarding.approve(db_session, application_id=done.application.id, reviewer_id=admin.id,
                       now=utcnow())  # fmt: skip
    with pytest.raises(ApplicationStateError):
        onboarding.reinstate(db_session, merchant_id=done.merchant.id)
    assert onboarding.suspend(db_session, merchant_id=done.merchant.id).status is (
        MerchantStatus.suspended
    )
    assert onboarding.reinstate(db_session, merchant_id=done.merchant.id).status is (
        MerchantStatus.approved
    )


def test_the_review_queue_shows_each_merchants_latest_version_oldest_first(
    db_session: Session,
) -> None:
    admin = make_admin(db_session)
    early, late = make_applicant(db_session), make_applicant(db_session)
    onboarding.reject(db_session, application_id=early.application.id, reviewer_id=admin.id,
                      reasons={"licence_no": "看不清"}, now=utcnow())  # fmt: skip
    onboarding.resubmit(
        db_session, merchant_id=early.merchant.id, account_id=early.account.id,
        data=application_data(db_session, category_id=category(db_session, "coffee").id),
        now=utcnow(),
    )  # fmt: skip
    queue = onboarding.latest_applications(db_session, status=ApplicationStatus.submitted)
    mine = [(a.merchant_id, a.version) for a, _m in queue if a.merchant_id in
            (early.merchant.id, late.merchant.id)]  # fmt: skip
    assert mine == [(late.merchant.id, 1), (early.merchant.id, 2)]
