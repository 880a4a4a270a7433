"""Portal passwords: argon2id through argon2-cffi, the rules a new password must meet, and a
verification that costs the same whether or not the username exists."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from merchants.config import PortalSettings
from merchants.errors import InvalidAccountError

MIN_PASSWORD_CHARS = 10
# argon2 takes any length, but hashing a megabyte on every try would be a cheap way to load us.
MAX_PASSWORD_CHARS = 128


@functools.cache
def hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


def hasher_for(settings: PortalSettings) -> PasswordHasher:
    return hasher(
        settings.password_time_cost, settings.password_memory_kib, settings.password_parallelism
    )


@functools.cache
def _dummy_hash(password_hasher: PasswordHasher) -> str:
    return password_hasher.hash("not a password of anyone")


def check_new_password(password: str, *, username: str = "") -> None:
    """Length is what makes a password strong (NIST SP 800-63B §5.1.1.2); no composition rules."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidAccountError(f"密码至少{MIN_PASSWORD_CHARS}个字符")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InvalidAccountError(f"密码不能超过{MAX_PASSWORD_CHARS}个字符")
    if username and password.lower() == username.lower():
        raise InvalidAccountError("密码不能与用户名相同")
    if len(set(password)) < 4:
        raise InvalidAccountError("密码过于简单")


def hash_password(password_hasher: PasswordHasher, password: str) -> str:
    return password_hasher.hash(password)


def verify_password(password_hasher: PasswordHasher, password_hash: str, password: str) -> bool:
    if len(password) > MAX_PASSWORD_CHARS:
        return False
    try:
        return password_hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def burn_verification(password_hasher: PasswordHasher, password: str) -> None:
    """Spend the time of one verification, for a username that does not exist, so the answer
    time does not tell which usernames do."""
    verify_password(password_hasher, _dummy_hash(password_hasher), password[:MAX_PASSWORD_CHARS])


def needs_rehash(password_hasher: PasswordHasher, password_hash: str) -> bool:
    try:
        return password_hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True
