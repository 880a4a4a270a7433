"""Server-side portal sessions. The browser's cookie holds a random token; the table holds its
SHA-256, the account, the CSRF token, and the times that end the session: `expires_at` (the
absolute lifetime from the login) and `last_seen_at` (the idle timeout). Logging out, disabling
an account or changing a password revokes rows, which every worker sees at its next request."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from merchants.models import PortalAccount, PortalSession

TOKEN_BYTES = 32
# A cookie longer than this is not one of ours; refuse it before hashing it.
MAX_TOKEN_CHARS = 128
# last_seen_at is written at most this often, not on every request: the idle timeout is then
# measured from up to this long before the last request, so a session can end this much early,
# never late.
TOUCH_EVERY = timedelta(seconds=60)
# Ended sessions stay this long after their lifetime (who was logged in from where, when an
# incident is looked into), then housekeeping deletes them.
ENDED_SESSIONS_KEPT = timedelta(days=30)


def session_id_of(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def open_session(
    session: Session,
    *,
    account_id: int,
    now: datetime,
    lifetime: timedelta,
    ip: str = "",
    user_agent: str = "",
) -> tuple[str, PortalSession]:
    """A new session: (the token for the cookie, the row)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    row = PortalSession(
        id=session_id_of(token),
        account_id=account_id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + lifetime,
        ip=ip[:45],
        user_agent=user_agent[:255],
        revoked=False,
    )
    session.add(row)
    session.flush()
    return token, row


def resolve_session(
    session: Session, *, token: str, now: datetime, idle_timeout: timedelta
) -> tuple[PortalSession, PortalAccount] | None:
    """The live session of a cookie and its account, or None: unknown, revoked, past its
    lifetime, idle too long, or of a disabled account. A live session is marked as seen."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    found = session.execute(
        select(PortalSession, PortalAccount)
        .join(PortalAccount, PortalAccount.id == PortalSession.account_id)
        .where(PortalSession.id == session_id_of(token))
    ).one_or_none()
    if found is None:
        return None
    row, account = found
    if row.revoked or account.disabled or now >= row.expires_at:
        return None
    if now - row.last_seen_at > idle_timeout:
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        # Conditional, so two requests of one session at once write once and never move the
        # time backwards.
        session.execute(
            update(PortalSession)
            .where(PortalSession.id == row.id, PortalSession.last_seen_at < now)
            .values(last_seen_at=now)
        )
    return row, account


def revoke_session(session: Session, *, session_id: str) -> None:
    session.execute(
        update(PortalSession).where(PortalSession.id == session_id).values(revoked=True)
    )


def revoke_account_sessions(
    session: Session, *, account_id: int, keep_session_id: str | None = None
) -> int:
    """Ends every session of an account (but `keep_session_id`, the one changing its password)."""
    statement = update(PortalSession).where(
        PortalSession.account_id == account_id, PortalSession.revoked.is_(False)
    )
    if keep_session_id is not None:
        statement = statement.where(PortalSession.id != keep_session_id)
    result = session.execute(statement.values(revoked=True))
    return int(getattr(result, "rowcount", 0) or 0)


def prune_sessions(session: Session, now: datetime) -> int:
    """Delete sessions whose lifetime ended more than ENDED_SESSIONS_KEPT ago (a revoked or idle
    one is kept as long as its lifetime lasts, like any other)."""
    result = session.execute(
        delete(PortalSession).where(PortalSession.expires_at < now - ENDED_SESSIONS_KEPT)
    )
    assert isinstance(result, CursorResult)
    return int(result.rowcount)
