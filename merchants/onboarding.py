"""Merchant onboarding: sign up (an owner account, a pending merchant, application version 1),
the bank's review (approve, or reject with a reason per field), resubmission of a rejected
application as the next version, and suspending / reinstating an approved merchant.

States: an application is `submitted` until reviewed, then `approved` or `rejected`; only the
latest version of a merchant's applications can be under review, and only a rejected latest
version can be followed by a new one. Reviews move the state with a conditional UPDATE, so two
bank admins reviewing the same application at once cannot both succeed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from merchants import accounts, service
from merchants.errors import (
    ApplicationNotFoundError,
    ApplicationStateError,
    InvalidReviewError,
    LicenceInUseError,
    MerchantNotFoundError,
    UnknownCategoryError,
)
from merchants.models import (
    ApplicationStatus,
    Category,
    Merchant,
    MerchantApplication,
    MerchantStatus,
    PortalAccount,
    PortalRole,
)

# The fields a reviewer can give a reason for, in the order the forms show them.
REVIEWABLE_FIELDS = ("business_name", "licence_no", "contact_name", "contact_phone", "category")
MAX_REASON_CHARS = 200


@dataclass(frozen=True)
class ApplicationData:
    business_name: str
    licence_no: str
    contact_name: str
    contact_phone: str
    category_id: int


@dataclass(frozen=True)
class SignUp:
    account: PortalAccount
    merchant: Merchant
    application: MerchantApplication


def _check_data(session: Session, data: ApplicationData, *, merchant_id: int | None) -> None:
    if session.get(Category, data.category_id) is None:
        raise UnknownCategoryError("经营类目不存在")
    others = select(MerchantApplication.id).where(
        MerchantApplication.licence_no == data.licence_no,
        MerchantApplication.status != ApplicationStatus.rejected,
    )
    if merchant_id is not None:
        others = others.where(MerchantApplication.merchant_id != merchant_id)
    if session.scalar(others.limit(1)) is not None:
        raise LicenceInUseError("该统一社会信用代码已被其他商户使用")


def _new_version(
    merchant_id: int, version: int, data: ApplicationData, *, account_id: int, now: datetime
) -> MerchantApplication:
    return MerchantApplication(
        merchant_id=merchant_id,
        version=version,
        business_name=data.business_name,
        licence_no=data.licence_no,
        contact_name=data.contact_name,
        contact_phone=data.contact_phone,
        category_id=data.category_id,
        status=ApplicationStatus.submitted,
        field_reasons={},
        submitted_by=account_id,
        submitted_at=now,
    )


def sign_up(
    session: Session,
    *,
    username: str,
    password: str,
    display_name: str,
    data: ApplicationData,
    hasher: PasswordHasher,
    now: datetime,
) -> SignUp:
    _check_data(session, data, merchant_id=None)
    merchant = Merchant(
        name=data.business_name, category_id=data.category_id, status=MerchantStatus.pending
    )
    session.add(merchant)
    session.flush()
    account = accounts.create_account(
        session,
        username=username,
        password=password,
        role=PortalRole.merchant_owner,
        hasher=hasher,
        merchant_id=merchant.id,
        display_name=display_name,
    )
    application = _new_version(merchant.id, 1, data, account_id=account.id, now=now)
    session.add(application)
    session.flush()
    return SignUp(account, merchant, application)


def latest_application(session: Session, merchant_id: int) -> MerchantApplication | None:
    """The current version, or None for a merchant that never applied (made by the bank)."""
    return session.scalars(
        select(MerchantApplication)
        .where(MerchantApplication.merchant_id == merchant_id)
        .order_by(MerchantApplication.version.desc())
        .limit(1)
    ).one_or_none()


def current_application(session: Session, merchant_id: int) -> MerchantApplication:
    application = latest_application(session, merchant_id)
    if application is None:
        raise ApplicationNotFoundError("没有入驻申请")
    return application


def application_history(session: Session, merchant_id: int) -> list[MerchantApplication]:
    return list(
        session.scalars(
            select(MerchantApplication)
            .where(MerchantApplication.merchant_id == merchant_id)
            .order_by(MerchantApplication.version.desc())
        )
    )


def previous_version(
    session: Session, application: MerchantApplication
) -> MerchantApplication | None:
    return session.scalars(
        select(MerchantApplication).where(
            MerchantApplication.merchant_id == application.merchant_id,
            MerchantApplication.version == application.version - 1,
        )
    ).one_or_none()


def resubmit(
    session: Session, *, merchant_id: int, account_id: int, data: ApplicationData, now: datetime
) -> MerchantApplication:
    latest = current_application(session, merchant_id)
    if latest.status is not ApplicationStatus.rejected:
        raise ApplicationStateError("只有被驳回的申请可以修改后重新提交")
    _check_data(session, data, merchant_id=merchant_id)
    application = _new_version(
        merchant_id, latest.version + 1, data, account_id=account_id, now=now
    )
    session.add(application)
    session.flush()  # the unique (merchant_id, version) refuses a concurrent second resubmit
    return application


def _review(
    session: Session,
    application_id: int,
    *,
    status: ApplicationStatus,
    reasons: dict[str, str],
    reviewer_id: int,
    now: datetime,
) -> MerchantApplication:
    moved = session.execute(
        update(MerchantApplication)
        .where(
            MerchantApplication.id == application_id,
            MerchantApplication.status == ApplicationStatus.submitted,
        )
        .values(status=status, field_reasons=reasons, reviewed_by=reviewer_id, reviewed_at=now)
        .execution_options(synchronize_session=False)
    )
    application = session.get(MerchantApplication, application_id)
    if application is None:
        raise ApplicationNotFoundError("申请不存在")
    session.refresh(application)
    if not getattr(moved, "rowcount", 0):
        raise ApplicationStateError("该申请已审核过")
    return application


def approve(
    session: Session, *, application_id: int, reviewer_id: int, now: datetime
) -> MerchantApplication:
    found = session.get(MerchantApplication, application_id)
    if found is None:
        raise ApplicationNotFoundError("申请不存在")
    # Checked (and the row locked) before anything is written: an error leaves no half-change.
    merchant = session.get(Merchant, found.merchant_id, with_for_update=True)
    if merchant is None:  # pragma: no cover - the foreign key holds it
        raise MerchantNotFoundError("商户不存在")
    if merchant.status is not MerchantStatus.pending:
        raise ApplicationStateError("商户不在待审核状态")
    application = _review(
        session,
        application_id,
        status=ApplicationStatus.approved,
        reasons={},
        reviewer_id=reviewer_id,
        now=now,
    )
    merchant.name = application.business_name
    merchant.category_id = application.category_id
    # Through the service, so the change log tells every worker's store index.
    service.set_merchant_status(session, merchant.id, status=MerchantStatus.approved)
    return application


def clean_reasons(reasons: Mapping[str, str]) -> dict[str, str]:
    """The non-empty reasons, checked: known fields, at most MAX_REASON_CHARS, at least one."""
    cleaned = {field: text.strip() for field, text in reasons.items() if text and text.strip()}
    unknown = set(cleaned) - set(REVIEWABLE_FIELDS)
    if unknown:
        raise InvalidReviewError(f"未知字段：{', '.join(sorted(unknown))}")
    if not cleaned:
        raise InvalidReviewError("驳回时请至少为一个字段填写原因")
    if any(len(text) > MAX_REASON_CHARS for text in cleaned.values()):
        raise InvalidReviewError(f"每条原因不能超过{MAX_REASON_CHARS}个字符")
    return {field: cleaned[field] for field in REVIEWABLE_FIELDS if field in cleaned}


def reject(
    session: Session,
    *,
    application_id: int,
    reviewer_id: int,
    reasons: Mapping[str, str],
    now: datetime,
) -> MerchantApplication:
    return _review(
        session,
        application_id,
        status=ApplicationStatus.rejected,
        reasons=clean_reasons(reasons),
        reviewer_id=reviewer_id,
        now=now,
    )


def _move_merchant(
    session: Session, merchant_id: int, *, from_status: MerchantStatus, to: MerchantStatus
) -> Merchant:
    merchant = session.get(Merchant, merchant_id, with_for_update=True)
    if merchant is None:
        raise MerchantNotFoundError("商户不存在")
    if merchant.status is not from_status:
        raise ApplicationStateError(f"商户当前状态不能执行此操作（{merchant.status.value}）")
    return service.set_merchant_status(session, merchant_id, status=to)


def suspend(session: Session, *, merchant_id: int) -> Merchant:
    return _move_merchant(
        session, merchant_id, from_status=MerchantStatus.approved, to=MerchantStatus.suspended
    )


def reinstate(session: Session, *, merchant_id: int) -> Merchant:
    return _move_merchant(
        session, merchant_id, from_status=MerchantStatus.suspended, to=MerchantStatus.approved
    )


def latest_applications(
    session: Session, *, status: ApplicationStatus | None = None, limit: int = 200
) -> list[tuple[MerchantApplication, Merchant]]:
    """The current version of each merchant's application (with its merchant), oldest
    submission first, so the queue is worked in order."""
    latest = (
        select(
            MerchantApplication.merchant_id,
            func.max(MerchantApplication.version).label("version"),
        )
        .group_by(MerchantApplication.merchant_id)
        .subquery()
    )
    statement = (
        select(MerchantApplication, Merchant)
        .join(
            latest,
            (latest.c.merchant_id == MerchantApplication.merchant_id)
            & (latest.c.version == MerchantApplication.version),
        )
        .join(Merchant, Merchant.id == MerchantApplication.merchant_id)
        .order_by(MerchantApplication.submitted_at, MerchantApplication.id)
        .limit(limit)
    )
    if status is not None:
        statement = statement.where(MerchantApplication.status == status)
    return [(application, merchant) for application, merchant in session.execute(statement)]
