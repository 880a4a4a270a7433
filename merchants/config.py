"""Settings of the partner portal (`TIANFU_PORTAL_*`), composed into TianfuSettings as `portal`."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field


class PortalSettings(BaseModel):
    # A portal session ends after this long without a request (server-side: the session row's
    # last_seen_at), and in any case this long after the login.
    idle_timeout_s: int = Field(default=1800, ge=60, le=86_400)
    session_lifetime_s: int = Field(default=43_200, ge=300, le=7 * 86_400)
    # This many wrong passwords in a row lock the account for lockout_s.
    lockout_threshold: int = Field(default=5, ge=1, le=100)
    lockout_s: int = Field(default=900, ge=1, le=86_400)
    # argon2id cost: the defaults are argon2-cffi's (RFC 9106's low-memory profile, about 0.2 s
    # on one core). A stored hash made with other parameters is rehashed at its next login, so
    # raising these upgrades every active account. Tests lower them to stay fast.
    password_time_cost: int = Field(default=3, ge=1, le=20)
    password_memory_kib: int = Field(default=65_536, ge=1024, le=4 * 1024 * 1024)
    password_parallelism: int = Field(default=4, ge=1, le=16)

    @property
    def idle_timeout(self) -> timedelta:
        return timedelta(seconds=self.idle_timeout_s)

    @property
    def session_lifetime(self) -> timedelta:
        return timedelta(seconds=self.session_lifetime_s)

    @property
    def lockout(self) -> timedelta:
        return timedelta(seconds=self.lockout_s)
