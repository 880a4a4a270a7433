"""Portal accounts: creating them, logging in (with lock-out after repeated wrong passwords),
staff accounts of a merchant and the stores they are limited to. No HTTP here."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from merchants import passwords, sessions
from merchants.config import PortalSettings
from merchants.errors import (
    AccountNotFoundError,
    InvalidAccountError,
    StoreNotFoundError,
    UsernameTakenError,
)
from merchants.models import PortalAccount, PortalRole, StaffStoreScope, Store

_USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.@-]{2,31}$")
MAX_DISPLAY_NAME_CHARS = 64


def normalise_username(raw: str) -> str:
    username = raw.strip().lower()
    if not _USERNAME_RE.fullmatch(username):
        raise InvalidAccountError("用户名为3-32个字符：字母、数字或 _ . @ -，以字母或数字开头")
    return username


@dataclass(frozen=True)
class LoginPolicy:
    hasher: PasswordHasher
    lockout_threshold: int
    lockout: timedelta

    @classmethod
    def from_settings(cls, settings: PortalSettings) -> LoginPolicy:
        return cls(
            hasher=passwords.hasher_for(settings),
            lockout_threshold=settings.lockout_threshold,
            lockout=settings.lockout,
        )


class LoginRefusal(StrEnum):
    bad_credentials = "bad_credentials"
    locked = "locked"
    disabled = "disabled"


@dataclass(frozen=True)
class LoginResult:
    """A login's outcome. Refusals are values, not exceptions: a refused login still writes
    (the failure count, the lock), and its transaction must commit."""

    account: PortalAccount | None
    refusal: LoginRefusal | None = None
    locked_until: datetime | None = None
    just_locked: bool = False

    @property
    def ok(self) -> bool:
        return self.refusal is None


def create_account(
    session: Session,
    *,
    username: str,
    password: str,
    role: PortalRole,
    hasher: PasswordHasher,
    merchant_id: int | None = None,
    display_name: str = "",
) -> PortalAccount:
    username = normalise_username(username)
    passwords.check_new_password(password, username=username)
    if len(display_name) > MAX_DISPLAY_NAME_CHARS:
        raise InvalidAccountError(f"显示名称不能超过{MAX_DISPLAY_NAME_CHARS}个字符")
    if (role is PortalRole.bank_admin) != (merchant_id is None):
        raise InvalidAccountError("银行管理员不属于商户；商户账号必须属于一个商户")
    if session.scalar(select(PortalAccount.id).where(PortalAccount.username == username)):
        raise UsernameTakenError(f"用户名 {username} 已被使用")
    account = PortalAccount(
        username=username,
        password_hash=passwords.hash_password(hasher, password),
        role=role,
        merchant_id=merchant_id,
        display_name=display_name.strip() or username,
        failed_logins=0,
        disabled=False,
    )
    try:
        with session.begin_nested():  # a concurrent sign-up with the same name loses here
            session.add(account)
    except IntegrityError:
        raise UsernameTakenError(f"用户名 {username} 已被使用") from None
    return account


def authenticate(
    session: Session, *, username: str, password: str, now: datetime, policy: LoginPolicy
) -> LoginResult:
    try:
        name = normalise_username(username)
    except InvalidAccountError:
        name = ""
    account = (
        session.scalars(select(PortalAccount).where(PortalAccount.username == name)).one_or_none()
        if name
        else None
    )
    if account is None:
        passwords.burn_verification(policy.hasher, password)
        return LoginResult(None, LoginRefusal.bad_credentials)
    if account.locked_until is not None and account.locked_until > now:
        return LoginResult(account, LoginRefusal.locked, locked_until=account.locked_until)
    if not passwords.verify_password(policy.hasher, account.password_hash, password):
        return _count_failure(session, account, now=now, policy=policy)
    if account.disabled:
        return LoginResult(account, LoginRefusal.disabled)
    if passwords.needs_rehash(policy.hasher, account.password_hash):
        account.password_hash = passwords.hash_password(policy.hasher, password)
    account.failed_logins = 0
    account.locked_until = None
    account.last_login_at = now
    session.flush()
    return LoginResult(account)


def _count_failure(
    session: Session, account: PortalAccount, *, now: datetime, policy: LoginPolicy
) -> LoginResult:
    # Counted by the database, so parallel guesses cannot each read the same old count.
    failures = session.scalar(
        update(PortalAccount)
        .where(PortalAccount.id == account.id)
        .values(failed_logins=PortalAccount.failed_logins + 1)
        .returning(PortalAccount.failed_logins)
        .execution_options(synchronize_session=False)
    )
    if failures is None or failures < policy.lockout_threshold:
        session.expire(account, ["failed_logins"])
        return LoginResult(account, LoginRefusal.bad_credentials)
    locked_until = now + policy.lockout
    session.execute(
        update(PortalAccount)
        .where(PortalAccount.id == account.id)
        .values(failed_logins=0, locked_until=locked_until)
        .execution_options(synchronize_session=False)
    )
    session.expire(account, ["failed_logins", "locked_until"])
    return LoginResult(
        account, LoginRefusal.bad_credentials, locked_until=locked_until, just_locked=True
    )


def change_password(
    session: Session, *, account_id: int, current: str, new: str, hasher: PasswordHasher
) -> PortalAccount:
    account = session.get(PortalAccount, account_id)
    if account is None:
        raise AccountNotFoundError("账号不存在")
    if not passwords.verify_password(hasher, account.password_hash, current):
        raise InvalidAccountError("当前密码不正确")
    passwords.check_new_password(new, username=account.username)
    account.password_hash = passwords.hash_password(hasher, new)
    session.flush()
    return account


# -- staff of a merchant --------------------------------------------------------------------------


def staff_account(session: Session, *, merchant_id: int, account_id: int) -> PortalAccount:
    """A staff account of this merchant; any other account is "not found"."""
    account = session.get(PortalAccount, account_id)
    if (
        account is None
        or account.merchant_id != merchant_id
        or account.role is not PortalRole.merchant_staff
    ):
        raise AccountNotFoundError("店员账号不存在")
    return account


def create_staff(
    session: Session,
    *,
    merchant_id: int,
    username: str,
    password: str,
    hasher: PasswordHasher,
    display_name: str = "",
    store_ids: Iterable[int] = (),
) -> PortalAccount:
    account = create_account(
        session,
        username=username,
        password=password,
        role=PortalRole.merchant_staff,
        hasher=hasher,
        merchant_id=merchant_id,
        display_name=display_name,
    )
    set_staff_stores(session, merchant_id=merchant_id, account_id=account.id, store_ids=store_ids)
    return account


def set_staff_stores(
    session: Session, *, merchant_id: int, account_id: int, store_ids: Iterable[int]
) -> frozenset[int]:
    """Limits a staff account to these stores of its merchant; none means all of them."""
    staff_account(session, merchant_id=merchant_id, account_id=account_id)
    wanted = frozenset(store_ids)
    if wanted:
        own = set(
            session.scalars(
                select(Store.id).where(Store.merchant_id == merchant_id, Store.id.in_(wanted))
            )
        )
        if own != wanted:
            raise StoreNotFoundError("门店不存在")
    session.execute(delete(StaffStoreScope).where(StaffStoreScope.account_id == account_id))
    session.add_all(StaffStoreScope(account_id=account_id, store_id=sid) for sid in sorted(wanted))
    session.flush()
    return wanted


def staff_store_ids(session: Session, account_id: int) -> frozenset[int]:
    return frozenset(
        session.scalars(
            select(StaffStoreScope.store_id).where(StaffStoreScope.account_id == account_id)
        )
    )


def set_staff_disabled(
    session: Session, *, merchant_id: int, account_id: int, disabled: bool
) -> PortalAccount:
    account = staff_account(session, merchant_id=merchant_id, account_id=account_id)
    account.disabled = disabled
    session.flush()
    if disabled:
        sessions.revoke_account_sessions(session, account_id=account.id)
    return account


def list_staff(session: Session, merchant_id: int) -> list[tuple[PortalAccount, frozenset[int]]]:
    accounts = session.scalars(
        select(PortalAccount)
        .where(
            PortalAccount.merchant_id == merchant_id,
            PortalAccount.role == PortalRole.merchant_staff,
        )
        .order_by(PortalAccount.id)
    ).all()
    scopes: dict[int, set[int]] = {account.id: set() for account in accounts}
    if accounts:
        rows = session.execute(
            select(StaffStoreScope.account_id, StaffStoreScope.store_id).where(
                StaffStoreScope.account_id.in_(scopes)
            )
        )
        for account_id, store_id in rows:
            scopes[account_id].add(store_id)
    return [(account, frozenset(scopes[account.id])) for account in accounts]
