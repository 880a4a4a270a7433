"""Portal accounts: argon2 hashing, the login and its lock-out, staff accounts and their stores."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from merchants import accounts, passwords
from merchants.accounts import LoginPolicy, LoginRefusal
from merchants.config import PortalSettings
from merchants.errors import (
    AccountNotFoundError,
    InvalidAccountError,
    StoreNotFoundError,
    UsernameTakenError,
)
from merchants.models import PortalAccount, PortalRole, PortalSession
from merchants.sessions import open_session
from tests.builders import make_merchant, make_store
from tests.merchants.portal_support import (
    FAST_HASHER,
    FAST_POLICY,
    PASSWORD,
    make_account,
    make_admin,
    make_owner,
)
from tianfu.orm import utcnow


def login(
    session: Session,
    username: str,
    password: str,
    *,
    now: datetime | None = None,
    policy: LoginPolicy = FAST_POLICY,
) -> accounts.LoginResult:
    return accounts.authenticate(
        session, username=username, password=password, now=now or utcnow(), policy=policy
    )


# -- hashing ------------------------------------------------------------------------------------


def test_passwords_are_stored_as_argon2id_and_verify() -> None:
    stored = passwords.hash_password(FAST_HASHER, PASSWORD)
    assert stored.startswith("$argon2id$v=19$")
    assert PASSWORD not in stored
    assert passwords.verify_password(FAST_HASHER, stored, PASSWORD)
    assert not passwords.verify_password(FAST_HASHER, stored, PASSWORD + "!")
    assert not passwords.verify_password(FAST_HASHER, "not a hash", PASSWORD)
    assert passwords.hash_password(FAST_HASHER, PASSWORD) != stored  # salted


def test_the_default_parameters_are_argon2_cffis() -> None:
    hasher = passwords.hasher_for(PortalSettings())
    assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism) == (3, 65_536, 4)


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "至少10个字符"),
        ("x" * 129, "不能超过128个字符"),
        ("aaaaaaaaaaaa", "过于简单"),
        ("li.ming.1988", "不能与用户名相同"),
    ],
)
def test_weak_passwords_are_refused(password: str, message: str) -> None:
    with pytest.raises(InvalidAccountError, match=message):
        passwords.check_new_password(password, username="li.ming.1988")


@pytest.mark.parametrize("username", ["ab", "-lead", "a" * 33, "名字", "with space", ""])
def test_malformed_usernames_are_refused(username: str) -> None:
    with pytest.raises(InvalidAccountError):
        accounts.normalise_username(username)


def test_usernames_are_case_insensitive_and_unique(db_session: Session) -> None:
    make_admin(db_session, username="Ops.Lead")
    assert db_session.scalars(select(PortalAccount.username)).all() == ["ops.lead"]
    with pytest.raises(UsernameTakenError):
        make_admin(db_session, username="OPS.LEAD")


def test_the_database_refuses_a_duplicate_username_too(db_session: Session) -> None:
    make_admin(db_session, username="twin")
    twin = PortalAccount(username="twin", password_hash="x", role=PortalRole.bank_admin)
    db_session.add(twin)
    with pytest.raises(IntegrityError):
        db_session.flush()


def test_a_merchant_account_needs_a_merchant_and_an_admin_has_none(db_session: Session) -> None:
    with pytest.raises(InvalidAccountError):
        make_account(db_session, role=PortalRole.merchant_owner)
    with pytest.raises(InvalidAccountError):
        make_account(db_session, role=PortalRole.bank_admin, merchant=make_merchant(db_session))


def test_the_check_constraint_holds_roles_and_merchants_together(db_session: Session) -> None:
    stray = PortalAccount(username="stray", password_hash="x", role=PortalRole.merchant_staff)
    db_session.add(stray)
    with pytest.raises(IntegrityError):
        db_session.flush()


# -- logging in ---------------------------------------------------------------------------------


def test_a_good_login_resets_the_failures_and_notes_the_time(db_session: Session) -> None:
    admin = make_admin(db_session)
    assert not login(db_session, admin.username, "wrong password!").ok
    now = utcnow()
    result = login(db_session, admin.username.upper(), PASSWORD, now=now)
    assert result.ok
    assert result.account is admin
    assert (admin.failed_logins, admin.locked_until, admin.last_login_at) == (0, None, now)


def test_an_unknown_username_costs_a_verification_and_says_the_same(
    db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []
    real = PasswordHasher.verify

    def counting(self: PasswordHasher, hash: str, password: str | bytes) -> bool:
        checked.append(hash)
        return real(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    result = login(db_session, "nobody-here", PASSWORD)
    assert (result.account, result.refusal) == (None, LoginRefusal.bad_credentials)
    assert len(checked) == 1  # as long as a real account's wrong password takes
    assert login(db_session, "名字 not valid", PASSWORD).refusal is LoginRefusal.bad_credentials


def test_five_wrong_passwords_lock_the_account_for_fifteen_minutes(db_session: Session) -> None:
    admin = make_admin(db_session)
    policy = LoginPolicy(FAST_HASHER, lockout_threshold=5, lockout=timedelta(minutes=15))
    now = utcnow()
    for attempt in range(1, 5):
        result = login(db_session, admin.username, "wrong password!", now=now, policy=policy)
        assert (result.refusal, result.just_locked) == (LoginRefusal.bad_credentials, False)
        assert admin.failed_logins == attempt
    fifth = login(db_session, admin.username, "wrong password!", now=now, policy=policy)
    assert fifth.just_locked
    assert fifth.locked_until == now + timedelta(minutes=15)
    # Locked: even the right password is refused, until the lock runs out.
    later = now + timedelta(minutes=14)
    locked = login(db_session, admin.username, PASSWORD, now=later, policy=policy)
    assert locked.refusal is LoginRefusal.locked
    after = now + timedelta(minutes=15, seconds=1)
    assert login(db_session, admin.username, PASSWORD, now=after, policy=policy).ok


def test_the_lockout_threshold_and_duration_come_from_settings() -> None:
    policy = LoginPolicy.from_settings(PortalSettings(lockout_threshold=3, lockout_s=60))
    assert (policy.lockout_threshold, policy.lockout) == (3, timedelta(seconds=60))


def test_a_disabled_account_cannot_log_in_even_with_its_password(db_session: Session) -> None:
    owner = make_owner(db_session)
    owner.disabled = True
    assert login(db_session, owner.username, PASSWORD).refusal is LoginRefusal.disabled
    assert login(db_session, owner.username, "wrong password!").refusal is (
        LoginRefusal.bad_credentials
    )


def test_a_hash_made_with_old_parameters_is_rehashed_at_login(db_session: Session) -> None:
    admin = make_admin(db_session)
    assert admin.password_hash.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    stronger = LoginPolicy(
        passwords.hasher(2, 2048, 1), lockout_threshold=5, lockout=timedelta(minutes=15)
    )
    assert login(db_session, admin.username, PASSWORD, policy=stronger).ok
    assert admin.password_hash.startswith("$argon2id$v=19$m=2048,t=2,p=1$")
    assert login(db_session, admin.username, PASSWORD, policy=stronger).ok


def test_changing_the_password_needs_the_current_one(db_session: Session) -> None:
    admin = make_admin(db_session)
    with pytest.raises(InvalidAccountError, match="当前密码不正确"):
        accounts.change_password(
            db_session, account_id=admin.id, current="not it at all", new="a new password",
            hasher=FAST_HASHER,
        )  # fmt: skip
    accounts.change_password(
        db_session, account_id=admin.id, current=PASSWORD, new="a new password",
        hasher=FAST_HASHER,
    )  # fmt: skip
    assert login(db_session, admin.username, "a new password").ok
    assert not login(db_session, admin.username, PASSWORD).ok


# -- staff --------------------------------------------------------------------------------------


def test_staff_are_limited_to_their_merchants_stores(db_session: Session) -> None:
    merchant = make_merchant(db_session)
    first = make_store(db_session, merchant=merchant)
    second = make_store(db_session, merchant=merchant, name="二店")
    elsewhere = make_store(db_session)  # another merchant's
    staff = accounts.create_staff(
        db_session, merchant_id=merchant.id, username="cashier1", password=PASSWORD,
        hasher=FAST_HASHER, store_ids=[first.id],
    )  # fmt: skip
    assert staff.role is PortalRole.merchant_staff
    assert accounts.staff_store_ids(db_session, staff.id) == {first.id}
    with pytest.raises(StoreNotFoundError):
        accounts.set_staff_stores(
            db_session, merchant_id=merchant.id, account_id=staff.id,
            store_ids=[second.id, elsewhere.id],
        )  # fmt: skip
    assert accounts.staff_store_ids(db_session, staff.id) == {first.id}
    accounts.set_staff_stores(
        db_session, merchant_id=merchant.id, account_id=staff.id, store_ids=[]
    )
    assert accounts.staff_store_ids(db_session, staff.id) == frozenset()
    assert accounts.list_staff(db_session, merchant.id) == [(staff, frozenset())]


def test_another_merchants_staff_is_not_found(db_session: Session) -> None:
    mine, theirs = make_merchant(db_session), make_merchant(db_session, name="别家")
    staff = accounts.create_staff(
        db_session, merchant_id=theirs.id, username="their.cashier", password=PASSWORD,
        hasher=FAST_HASHER,
    )  # fmt: skip
    owner = make_owner(db_session, mine)
    for account_id in (staff.id, owner.id):  # an owner is not a staff account either
        with pytest.raises(AccountNotFoundError):
            accounts.set_staff_disabled(
                db_session, merchant_id=mine.id, account_id=account_id, disabled=True
            )
    assert not staff.disabled


def test_disabling_staff_ends_their_sessions(db_session: Session) -> None:
    merchant = make_merchant(db_session)
    staff = accounts.create_staff(
        db_session, merchant_id=merchant.id, username="cashier2", password=PASSWORD,
        hasher=FAST_HASHER,
    )  # fmt: skip
    _token, row = open_session(
        db_session, account_id=staff.id, now=utcnow(), lifetime=timedelta(hours=1)
    )
    accounts.set_staff_disabled(
        db_session, merchant_id=merchant.id, account_id=staff.id, disabled=True
    )
    db_session.expire_all()
    assert db_session.get(PortalSession, row.id).revoked  # type: ignore[union-attr]
    assert login(db_session, "cashier2", PASSWORD).refusal is LoginRefusal.disabled
