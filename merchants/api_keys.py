"""API keys of the merchants' REST API: issued by a merchant's owner, shown once, stored hashed,
read or write, revocable.

A key reads `tfk_<prefix>_<secret>`, e.g. `tfk_3fa9c07b_Xk…` (4 + 8 + 1 + 43 characters):

* `tfk_` makes a leaked key recognisable (secret scanners, logs);
* the prefix (8 hex digits, unique) finds the row, and names the key in lists and in the audit
  log ("apikey:tfk_3fa9c07b") without revealing anything that opens it;
* the secret is 32 random bytes (`secrets.token_urlsafe(32)`), of which only the SHA-256 is kept.

Why SHA-256 and not argon2 like the passwords: a slow hash protects secrets a person chose, which
an attacker with the table can guess from a dictionary. A 256-bit random secret has no dictionary;
one SHA-256 of it is as hard to reverse as argon2 would be. And a slow hash costs its price on
every API call (argon2 as configured: about 0.2 s of CPU and 64 MiB), which would make each
request with a made-up key a cheap way to load the server. The stored digest is compared in
constant time, also when the prefix is unknown.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from merchants.errors import ApiKeyLimitError, OutOfScopeError
from merchants.models import ApiKeyAccess, MerchantApiKey

KEY_PREFIX = "tfk_"
_KEY_RE = re.compile(r"tfk_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")
MAX_ACTIVE_KEYS = 20
# last_used_at is written at most this often per key, so reads do not all become writes.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# Compared against when the prefix is unknown, so that answer takes as long as a wrong secret.
_NO_SUCH_DIGEST = hashlib.sha256(b"no such key").hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    key: MerchantApiKey
    token: str  # the whole key: shown to the owner once, never stored


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _new_prefix(session: Session) -> str:
    # 2^32 prefixes: a clash is rare, and the unique constraint is the backstop for a race.
    while True:
        prefix = f"{KEY_PREFIX}{secrets.token_hex(4)}"
        if session.scalar(select(MerchantApiKey.id).where(MerchantApiKey.prefix == prefix)) is None:
            return prefix


def active_count(session: Session, merchant_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(MerchantApiKey)
            .where(MerchantApiKey.merchant_id == merchant_id, MerchantApiKey.revoked_at.is_(None))
        )
        or 0
    )


def issue_key(
    session: Session,
    *,
    merchant_id: int,
    name: str,
    access: ApiKeyAccess,
    created_by: int,
    now: datetime,
) -> IssuedKey:
    if active_count(session, merchant_id) >= MAX_ACTIVE_KEYS:
        raise ApiKeyLimitError(f"有效密钥最多{MAX_ACTIVE_KEYS}个，请先吊销不用的密钥")
    prefix = _new_prefix(session)
    secret = secrets.token_urlsafe(32)
    key = MerchantApiKey(
        merchant_id=merchant_id,
        name=name,
        prefix=prefix,
        secret_sha256=digest(secret),
        access=access,
        created_by=created_by,
        created_at=now,
    )
    session.add(key)
    session.flush()
    return IssuedKey(key=key, token=f"{prefix}_{secret}")


def merchant_key(session: Session, *, merchant_id: int, key_id: int) -> MerchantApiKey:
    key = session.get(MerchantApiKey, key_id)
    if key is None or key.merchant_id != merchant_id:
        raise OutOfScopeError("密钥不存在或无权访问")
    return key


def revoke_key(session: Session, key: MerchantApiKey, *, now: datetime) -> bool:
    """Whether this call revoked it (False: it already was). A conditional UPDATE, so a key
    revoked twice at once keeps its first revocation time."""
    result = session.execute(
        update(MerchantApiKey)
        .where(MerchantApiKey.id == key.id, MerchantApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    session.refresh(key)
    return bool(getattr(result, "rowcount", 0))


def list_keys(session: Session, merchant_id: int) -> list[MerchantApiKey]:
    """Keys in use first, newest first."""
    return list(
        session.scalars(
            select(MerchantApiKey)
            .where(MerchantApiKey.merchant_id == merchant_id)
            .order_by(MerchantApiKey.revoked_at.is_not(None), MerchantApiKey.id.desc())
        )
    )


def parse_token(token: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed key, else None."""
    match = _KEY_RE.fullmatch(token) if len(token) < 100 else None
    return (f"{KEY_PREFIX}{match[1]}", match[2]) if match else None


def authenticate(session: Session, token: str) -> MerchantApiKey | None:
    """The key `token` opens: known, its secret right, not revoked. Otherwise None, whichever
    of those failed (the caller gives one answer for all)."""
    parsed = parse_token(token)
    if parsed is None:
        return None
    prefix, secret = parsed
    key = session.scalars(
        select(MerchantApiKey).where(MerchantApiKey.prefix == prefix)
    ).one_or_none()
    expected = key.secret_sha256 if key is not None else _NO_SUCH_DIGEST
    if not hmac.compare_digest(expected.encode("ascii"), digest(secret).encode("ascii")):
        return None
    if key is None or key.revoked_at is not None:
        return None
    return key


def touch(session: Session, key: MerchantApiKey, *, now: datetime) -> None:
    """Records that the key was used, at most once per LAST_USED_RESOLUTION."""
    session.execute(
        update(MerchantApiKey)
        .where(
            MerchantApiKey.id == key.id,
            or_(
                MerchantApiKey.last_used_at.is_(None),
                MerchantApiKey.last_used_at < now - LAST_USED_RESOLUTION,
            ),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
