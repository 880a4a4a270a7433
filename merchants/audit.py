"""The audit log: who changed what, when and from where. Entries are only ever added
(merchants.models refuses ORM updates and deletes; database triggers refuse the rest).

Routes record through `merchants.auth.audit`, which knows the request's account and address;
code without a request (the CLI) calls `record` with an `Actor` of its own. Actions are
dotted names, `<noun>.<verb past tense>`; add yours to ACTION_LABELS so the audit page can
offer it as a filter and show it in Chinese.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from merchants.models import AuditEntry, Merchant, PortalAccount
from tianfu.orm import Base, utcnow

ACTION_LABELS: dict[str, str] = {
    "account.created": "创建账号",
    "account.password_changed": "修改密码",
    "login.succeeded": "登录",
    "login.failed": "登录失败",
    "login.locked": "登录锁定",
    "logout": "退出登录",
    "merchant.signed_up": "商户注册",
    "application.resubmitted": "重新提交申请",
    "application.approved": "审核通过",
    "application.rejected": "审核驳回",
    "merchant.suspended": "暂停商户",
    "merchant.reinstated": "恢复商户",
    "staff.created": "创建店员",
    "staff.stores_changed": "调整店员门店",
    "staff.disabled": "停用店员",
    "staff.enabled": "启用店员",
    "store.created": "新建门店",
    "store.updated": "修改门店",
    "store.closed": "门店停业",
    "store.reopened": "门店恢复营业",
    "api_key.created": "创建 API 密钥",
    "api_key.revoked": "吊销 API 密钥",
    "offer.created": "新建优惠",
    "offer.updated": "修改优惠",
    "offer.submitted": "提交优惠审核",
    "offer.paused": "暂停优惠",
    "offer.resumed": "恢复优惠",
    "offer.ended": "结束优惠",
    "offer.approved": "优惠审核通过",
    "offer.rejected": "优惠审核驳回",
    "coupon.redeemed": "核销优惠券",
    "coupon.redemption_undone": "撤销核销",
    "ticket.admitted": "电影票检票",
}
# What the audit page calls the targets' tables; a table not listed shows its own name.
TARGET_LABELS: dict[str, str] = {
    "merchants": "商户",
    "merchant_applications": "入驻申请",
    "portal_accounts": "账号",
    "stores": "门店",
    "merchant_api_keys": "API 密钥",
    "offers": "优惠",
    "claims": "优惠券",
    "tickets": "电影票",
}
_ACTION_RE = re.compile(r"^[a-z_]+(\.[a-z_]+)*$")
PAGE_SIZE = 50


@dataclass(frozen=True)
class Actor:
    account_id: int | None
    label: str
    ip: str = ""

    @classmethod
    def of(cls, account: PortalAccount, *, ip: str = "") -> Actor:
        return cls(account_id=account.id, label=account.username, ip=ip)


def target_of(obj: Base) -> tuple[str, str]:
    """(table name, primary key) of a persisted row; composite keys are joined with commas."""
    state = inspect(obj)
    if state.identity is None:
        raise ValueError(f"{obj!r} has no identity yet: flush it before auditing it")
    return obj.__tablename__, ",".join(str(part) for part in state.identity)


def merchant_of(obj: Base) -> int | None:
    if isinstance(obj, Merchant):
        return obj.id
    value = getattr(obj, "merchant_id", None)
    return value if isinstance(value, int) else None


def record(
    session: Session,
    *,
    actor: Actor,
    action: str,
    target: Base,
    detail: Mapping[str, Any] | None = None,
    merchant_id: int | None = None,
    now: datetime | None = None,
) -> AuditEntry:
    if not _ACTION_RE.fullmatch(action) or len(action) > 48:
        raise ValueError(f"audit action {action!r} is not a dotted lower-case name")
    target_type, target_id = target_of(target)
    entry = AuditEntry(
        at=now or utcnow(),
        actor_account_id=actor.account_id,
        actor_label=actor.label[:64],
        ip=actor.ip[:45],
        action=action,
        target_type=target_type,
        target_id=target_id[:64],
        merchant_id=merchant_id if merchant_id is not None else merchant_of(target),
        detail=dict(detail or {}),
    )
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class AuditQuery:
    """Filters of the audit page; None means any. `actor` matches the username exactly."""

    actor: str | None = None
    merchant_id: int | None = None
    action: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


def search(
    session: Session, query: AuditQuery, *, before_id: int | None = None, limit: int = PAGE_SIZE
) -> list[AuditEntry]:
    """Newest first; the next page is `before_id=<last id shown>`."""
    statement = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if query.actor:
        statement = statement.where(AuditEntry.actor_label == query.actor)
    if query.merchant_id is not None:
        statement = statement.where(AuditEntry.merchant_id == query.merchant_id)
    if query.action:
        statement = statement.where(AuditEntry.action == query.action)
    if query.since is not None:
        statement = statement.where(AuditEntry.at >= query.since)
    if query.until is not None:
        statement = statement.where(AuditEntry.at < query.until)
    if before_id is not None:
        statement = statement.where(AuditEntry.id < before_id)
    return list(session.scalars(statement))
