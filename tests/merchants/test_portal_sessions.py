"""Server-side portal sessions: idle timeout and absolute lifetime on an injected clock,
revocation, what the table keeps (a hash of the cookie, never the cookie), and the settings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from merchants import sessions
from merchants.models import PortalSession
from tests.merchants.portal_support import make_admin, make_owner
from tianfu.orm import utcnow
from tianfu.settings import ConfigurationError, load_settings
from tianfu.wiring import housekeeping_jobs

IDLE = timedelta(minutes=30)
LIFETIME = timedelta(hours=12)


def test_the_table_holds_a_hash_of_the_token_and_a_csrf_token(db_session: Session) -> None:
    admin = make_admin(db_session)
    token, row = sessions.open_session(
        db_session, account_id=admin.id, now=utcnow(), lifetime=LIFETIME, ip="10.0.0.8",
        user_agent="Mozilla/5.0",
    )  # fmt: skip
    assert len(token) >= 43
    assert row.id == sessions.session_id_of(token) != token
    assert token not in db_session.scalars(select(PortalSession.id)).all()
    assert len(row.csrf_token) >= 43
    assert row.csrf_token != token
    assert (row.ip, row.user_agent) == ("10.0.0.8", "Mozilla/5.0")


def test_a_session_ends_after_the_idle_timeout_without_requests(db_session: Session) -> None:
    admin = make_admin(db_session)
    start = utcnow()
    token, _row = sessions.open_session(
        db_session, account_id=admin.id, now=start, lifetime=LIFETIME
    )

    def alive(minutes: float) -> bool:
        found = sessions.resolve_session(
            db_session, token=token, now=start + timedelta(minutes=minutes), idle_timeout=IDLE
        )
        return found is not None

    assert alive(29)  # and it is marked as seen at 29 min
    assert alive(58)  # 29 minutes after that
    assert not alive(88.5)  # 30.5 minutes of silence


def test_requests_within_a_minute_do_not_write(db_session: Session) -> None:
    admin = make_admin(db_session)
    start = utcnow()
    token, row = sessions.open_session(
        db_session, account_id=admin.id, now=start, lifetime=LIFETIME
    )
    sessions.resolve_session(
        db_session, token=token, now=start + timedelta(seconds=30), idle_timeout=IDLE
    )
    db_session.expire_all()
    assert db_session.get(PortalSession, row.id).last_seen_at == start  # type: ignore[union-attr]
    sessions.resolve_session(
        db_session, token=token, now=start + timedelta(seconds=90), idle_timeout=IDLE
    )
    db_session.expire_all()
    seen = db_session.get(PortalSession, row.id).last_seen_at  # type: ignore[union-attr]
    assert seen == start + timedelta(seconds=90)


def test_a_busy_session_still_ends_at_its_absolute_lifetime(db_session: Session) -> None:
    admin = make_admin(db_session)
    start = utcnow()
    token, _row = sessions.open_session(
        db_session, account_id=admin.id, now=start, lifetime=LIFETIME
    )
    for minutes in range(20, 12 * 60, 20):
        moment = start + timedelta(minutes=minutes)
        assert sessions.resolve_session(db_session, token=token, now=moment, idle_timeout=IDLE)
    end = start + LIFETIME
    assert sessions.resolve_session(db_session, token=token, now=end, idle_timeout=IDLE) is None


def test_revoked_forged_and_disabled_sessions_are_no_sessions(db_session: Session) -> None:
    owner = make_owner(db_session)
    now = utcnow()
    token, row = sessions.open_session(db_session, account_id=owner.id, now=now, lifetime=LIFETIME)
    other, _ = sessions.open_session(db_session, account_id=owner.id, now=now, lifetime=LIFETIME)
    for forged in ("", "x" * 500, token[:-1] + ("A" if token[-1] != "A" else "B")):
        assert (
            sessions.resolve_session(db_session, token=forged, now=now, idle_timeout=IDLE) is None
        )
    sessions.revoke_session(db_session, session_id=row.id)
    assert sessions.resolve_session(db_session, token=token, now=now, idle_timeout=IDLE) is None
    assert sessions.resolve_session(db_session, token=other, now=now, idle_timeout=IDLE)
    owner.disabled = True
    db_session.flush()
    assert sessions.resolve_session(db_session, token=other, now=now, idle_timeout=IDLE) is None


def test_revoking_an_accounts_sessions_can_keep_the_current_one(db_session: Session) -> None:
    admin = make_admin(db_session)
    now = utcnow()
    keep, kept = sessions.open_session(db_session, account_id=admin.id, now=now, lifetime=LIFETIME)
    gone, _ = sessions.open_session(db_session, account_id=admin.id, now=now, lifetime=LIFETIME)
    ended = sessions.revoke_account_sessions(
        db_session, account_id=admin.id, keep_session_id=kept.id
    )
    assert ended == 1
    assert sessions.resolve_session(db_session, token=keep, now=now, idle_timeout=IDLE)
    assert sessions.resolve_session(db_session, token=gone, now=now, idle_timeout=IDLE) is None


def test_housekeeping_deletes_sessions_a_month_past_their_lifetime(db_session: Session) -> None:
    owner = make_owner(db_session)
    start = utcnow() - LIFETIME - sessions.ENDED_SESSIONS_KEPT - timedelta(hours=1)
    _old, old = sessions.open_session(db_session, account_id=owner.id, now=start, lifetime=LIFETIME)
    recent_start = start + timedelta(hours=2)  # ended, but within the month kept
    _r, recent = sessions.open_session(
        db_session, account_id=owner.id, now=recent_start, lifetime=LIFETIME
    )
    live_token, live = sessions.open_session(
        db_session, account_id=owner.id, now=utcnow(), lifetime=LIFETIME
    )
    prune = housekeeping_jobs()["portal sessions"]
    assert prune(db_session, utcnow()) == 1
    left = set(db_session.scalars(select(PortalSession.id)))
    assert old.id not in left
    assert {recent.id, live.id} <= left
    assert sessions.resolve_session(db_session, token=live_token, now=utcnow(), idle_timeout=IDLE)
    assert prune(db_session, utcnow()) == 0


def test_the_timeouts_and_lockout_come_from_tianfu_portal_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIANFU_PORTAL_IDLE_TIMEOUT_S", "900")
    monkeypatch.setenv("TIANFU_PORTAL_LOCKOUT_THRESHOLD", "3")
    portal = load_settings().portal
    assert (portal.idle_timeout, portal.lockout_threshold) == (timedelta(minutes=15), 3)
    assert (portal.session_lifetime, portal.lockout) == (timedelta(hours=12), timedelta(minutes=15))
    monkeypatch.setenv("TIANFU_PORTAL_IDLE_TIMEOUT_S", "5")
    with pytest.raises(ConfigurationError, match="TIANFU_PORTAL_IDLE_TIMEOUT_S"):
        load_settings()
